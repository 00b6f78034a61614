"""Metric names the evaluation computes per task, and which of them improve downwards."""

from __future__ import annotations

# Metrics the evaluation computes, by task, and which of them improve downwards.
TASK_METRICS = {
    "classification": {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"},
    "regression": {"rmse", "mae", "r2"},
}


LOWER_IS_BETTER = {"rmse", "mae", "log_loss"}
