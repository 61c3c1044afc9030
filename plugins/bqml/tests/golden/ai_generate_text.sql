SELECT id, prompt, result, status
FROM AI.GENERATE_TEXT(
  MODEL `my-project.ftlab_mtsamples17.ftlab_base`,
  (SELECT id, prompt FROM `my-project.ftlab_mtsamples17.ftlab_eval`),
  STRUCT(16 AS max_output_tokens, 0.0 AS temperature, 1.0 AS top_p))
