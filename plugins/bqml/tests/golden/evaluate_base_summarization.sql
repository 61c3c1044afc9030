SELECT *
FROM ML.EVALUATE(
  MODEL `my-project.ftlab_mtsamples17.ftlab_base`,
  (SELECT prompt AS input_text, output_text AS output_text FROM `my-project.ftlab_mtsamples17.ftlab_eval`),
  STRUCT('summarization' AS task_type, 16 AS max_output_tokens, 0.0 AS temperature, 1.0 AS top_p))
