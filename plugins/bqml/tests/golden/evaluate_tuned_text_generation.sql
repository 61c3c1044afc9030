SELECT *
FROM ML.EVALUATE(
  MODEL `my-project.ftlab_mtsamples17.ftlab_tuned`,
  (SELECT prompt AS prompt, output_text AS label FROM `my-project.ftlab_mtsamples17.ftlab_eval`),
  STRUCT('text_generation' AS task_type, 16 AS max_output_tokens, 0.0 AS temperature, 1.0 AS top_p))
