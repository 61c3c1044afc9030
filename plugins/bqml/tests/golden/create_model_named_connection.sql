CREATE OR REPLACE MODEL `my-project.ftlab_mtsamples17.ftlab_base`
REMOTE WITH CONNECTION `my-project.us.bqml_conn`
OPTIONS(endpoint = 'gemini-2.0-flash-001')
