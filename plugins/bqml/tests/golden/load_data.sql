LOAD DATA OVERWRITE `my-project.ftlab_mtsamples17.ftlab_train_raw` (id STRING, input_text STRING, output_text STRING)
FROM FILES(format = 'NEWLINE_DELIMITED_JSON', uris = ['gs://cloud-samples-data/vertex-ai/model-evaluation/peft_train_sample.jsonl'])
