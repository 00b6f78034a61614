"""Where things live: roots read from the environment, and the layout beneath them.

Light on purpose (os only): factories call these at parse time to name Assets and
landing folders. Every process of a deployment (dag-processor, triggerer, workers)
must see the same environment.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path

HOME_ENV = "AIRFLOW_MLOPS_HOME"
LANDING_ENV = "AIRFLOW_MLOPS_LANDING_ROOT"
ARTIFACT_ENV = "AIRFLOW_MLOPS_ARTIFACT_ROOT"
PIPELINES_ENV = "AIRFLOW_MLOPS_PIPELINES_DIR"
AWS_CONN_ENV = "AIRFLOW_MLOPS_AWS_CONN_ID"
DEFAULT_MLFLOW_CONN_ID = "mlflow_default"

_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def home() -> str:
    return os.environ.get(HOME_ENV) or str(Path.home() / ".airflow-mlops")


def landing_root() -> str:
    return os.environ.get(LANDING_ENV) or f"{home()}/landing"


def artifact_root() -> str:
    return os.environ.get(ARTIFACT_ENV) or f"{home()}/artifacts"


def join(root: str, *parts: str) -> str:
    """Join URI/path parts with '/', whatever the scheme (file path, file://, s3://)."""
    return "/".join([root.rstrip("/"), *(part.strip("/") for part in parts if part)])


def safe_segment(value: str) -> str:
    """Turn a run id such as ``manual__2026-01-01T00:00:00+00:00`` into a path segment."""
    return _UNSAFE.sub("_", value).strip("_") or "_"


def landing_dir(pipeline: str, kind: str) -> str:
    """Inbox where new batches land: ``kind`` is ``training`` (labeled) or ``scoring``."""
    return join(landing_root(), pipeline, kind)


def lake_dir(pipeline: str, kind: str) -> str:
    """Where claimed batches are kept: ``labeled`` history or ``scoring`` inputs."""
    return join(artifact_root(), pipeline, "lake", kind)


def run_dir(pipeline: str, run_id: str, stage: str) -> str:
    """Run-scoped artifact folder: ``<root>/<pipeline>/runs/<run_id>/<stage>``."""
    return join(artifact_root(), pipeline, "runs", safe_segment(run_id), stage)


def prediction_log_dir(pipeline: str) -> str:
    return join(artifact_root(), pipeline, "prediction_log")


def prediction_log_partition(pipeline: str, day: date) -> str:
    """The date partition of the prediction log holding predictions made on ``day`` (UTC)."""
    return join(prediction_log_dir(pipeline), f"date={day:%Y-%m-%d}")


# Paths below <artifact_root>/<pipeline>/ that are reports a person may open through the plugin's
# report route: the validate task's output (report, GX Data Docs) and quarantined batches.
_REPORT_PATH = re.compile(r"^(runs/[A-Za-z0-9._=-]+/validate/[A-Za-z0-9._/=-]+|quarantine/[A-Za-z0-9._=-]+/[^/]+)$")


def is_report_path(relative: str) -> bool:
    """Whether ``relative`` (below the pipeline's artifact folder) is a report the plugin may serve."""
    return ".." not in relative.split("/") and bool(_REPORT_PATH.match(relative))


def labels_dir(pipeline: str) -> str:
    """Where delayed labels are dropped: files keyed by ``request_id`` (+ ``row``) or the id column."""
    return lake_dir(pipeline, "labels")


def incidents_uri(pipeline: str) -> str:
    """The monitoring health state: open incidents, the last closed ones, the alerts not yet sent."""
    return join(artifact_root(), pipeline, "monitoring", "incidents.json")
