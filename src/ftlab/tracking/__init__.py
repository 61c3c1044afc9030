"""Run recording: MLflow plus the same files in the run's output folder."""
