"""Schema of the ``tracking`` group: MLflow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class TrackingConfig:
    """Where the run is recorded."""

    enabled: bool = True
    """Log to MLflow (files are always written to the run folder)."""
    uri: Optional[str] = None
    """Tracking URI; null = $MLFLOW_TRACKING_URI if set, else sqlite file mlflow.db in the project root."""
    experiment_name: Optional[str] = None
    """MLflow experiment; null = the ftlab experiment name."""
    run_name: Optional[str] = None
    """MLflow run name; null = generated from experiment, model and time."""
    log_adapter: bool = True
    """Upload the trained adapter as an artifact."""
    strict: bool = False
    """Exit non-zero (after finishing the work) when an MLflow call failed mid-run; by default the
    run goes on, keeps everything in its folder and `ftlab sync RUN_DIR` uploads it later."""
