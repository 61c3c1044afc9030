"""Pure metric functions: no I/O, no MLflow."""
