CREATE OR REPLACE MODEL `my-project.ftlab_mtsamples17.ftlab_tuned`
REMOTE WITH CONNECTION DEFAULT
OPTIONS(
  endpoint = 'gemini-2.0-flash-001',
  max_iterations = 519,
  learning_rate_multiplier = 1.0,
  data_split_method = 'NO_SPLIT',
  evaluation_task = 'CLASSIFICATION',
  prompt_col = 'prompt',
  input_label_cols = ['label'])
AS SELECT prompt AS prompt, output_text AS label FROM `my-project.ftlab_mtsamples17.ftlab_train`
