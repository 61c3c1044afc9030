CREATE OR REPLACE TABLE `my-project.ftlab_mtsamples17.ftlab_train` AS
SELECT id, input_text, output_text, CONCAT(@prompt_prefix, IF(@max_input_chars > 0 AND LENGTH(input_text) > @max_input_chars, SUBSTR(input_text, 1, @max_input_chars), input_text), @prompt_suffix) AS prompt
FROM `my-project.ftlab_mtsamples17.ftlab_train_raw`
