CREATE OR REPLACE MODEL `my-project.ftlab_mtsamples17.ftlab_tuned`
REMOTE WITH CONNECTION DEFAULT
OPTIONS(
  endpoint = 'gemini-2.0-flash-001',
  max_iterations = 1930,
  learning_rate_multiplier = 0.5,
  data_split_method = 'RANDOM',
  data_split_eval_fraction = 0.1,
  evaluation_task = 'SUMMARIZATION',
  prompt_col = 'prompt',
  input_label_cols = ['label'])
AS SELECT prompt AS prompt, output_text AS label FROM `my-project.ftlab_mtsamples17.ftlab_train`
