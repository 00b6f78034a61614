"""Prediction drift of the champion: its scores on the training reference vs the scores it logged."""

from __future__ import annotations

import logging
from typing import Any

from airflow_mlops.spec import PipelineSpec

logger = logging.getLogger(__name__)


def champion_prediction_drift(spec: PipelineSpec, model: Any, reference: Any, current_log: Any) -> Any:
    """The champion's scores on its training reference vs the scores it logged."""
    from airflow_mlops.core.model.training import feature_frame
    from airflow_mlops.core.operations.drift.detect import predicted_label_drift, prediction_drift
    from airflow_mlops.core.operations.drift.statistics import thresholds

    try:
        features = feature_frame(reference, spec)
        if spec.model.task == "classification" and len(getattr(model, "classes_", ())) > 2:
            # More than two classes: one score says little; every class's share of the predictions is compared.
            return predicted_label_drift(
                model.predict(features),
                current_log["prediction"].to_numpy(),
                alpha=spec.monitoring.alpha,
                **thresholds(spec.monitoring),
            )
        if "score" in current_log.columns and hasattr(model, "predict_proba"):
            column, expected = "score", model.predict_proba(features)[:, -1]
        elif spec.model.task == "regression":
            column, expected = "prediction", model.predict(features)
        else:
            return None  # a classifier without scores: its labels would need a test of their own
    except (ValueError, KeyError) as exc:  # e.g. the spec changed the features since this champion
        logger.warning("no prediction drift: the champion cannot score its reference under this spec: %s", exc)
        return None
    if current_log[column].isna().all():
        return None
    return prediction_drift(
        expected,
        current_log[column].to_numpy(dtype="float64"),
        bins=spec.monitoring.bins,
        alpha=spec.monitoring.alpha,
        **thresholds(spec.monitoring),
    )
