"""The prediction log of a scored batch chunk: the same schema the serving app's logger writes."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from airflow_mlops.spec import PipelineSpec


@dataclass(frozen=True)
class LogContext:
    """What every log row of one input file shares."""

    model_name: str
    model_version: str
    source_uri: str
    logged_at: dt.datetime


def log_table(log: Any, model: Any) -> Any:
    """A chunk's prediction log as Arrow; each row's class probabilities (``prediction_log_frame``
    keeps them as arrays) become the log's map column, named by the model's class labels."""
    import pyarrow as pa

    from airflow_mlops.core.operations.prediction_log.blocks import probability_map

    if "probabilities" not in log.columns:
        return pa.Table.from_pandas(log, preserve_index=False)
    table = pa.Table.from_pandas(log.drop(columns=["probabilities"]), preserve_index=False)
    labels = tuple(str(c) for c in model.classes_)
    matrix = np.vstack(log["probabilities"].to_numpy()) if len(log) else np.zeros((0, len(labels)))
    return table.append_column("probabilities", probability_map([(0, matrix, labels)], len(log)))


def prediction_log_frame(frame: Any, model: Any, spec: PipelineSpec, context: LogContext) -> Any:
    """The prediction log of one chunk of a batch: one row per input row, each its own request.

    Columns: request_id, row, logged_at, model_name, model_version, source_uri, the id
    column (absent when the spec has none), the model inputs (``feature_frame``), prediction
    and (classifiers) score; more than two classes add ``probabilities``, one array per row
    (``log_table`` writes them as the log's map column).
    """
    import pandas as pd

    from airflow_mlops.core.model.training import feature_frame

    features = feature_frame(frame, spec)
    log = pd.DataFrame(
        {
            "request_id": [uuid.uuid4().hex for _ in range(len(frame))],
            "row": np.zeros(len(frame), dtype="int64"),  # each batch row is a request of one row
            "logged_at": context.logged_at,
            "model_name": context.model_name,
            "model_version": context.model_version,
            "source_uri": context.source_uri,
        }
    )
    if spec.data.id_column:
        log.insert(len(log.columns), spec.data.id_column, frame[spec.data.id_column].to_numpy())
    log = pd.concat([log, features.reset_index(drop=True)], axis=1)
    log["prediction"] = model.predict(features)
    if hasattr(model, "predict_proba"):
        probabilities = model.predict_proba(features)
        if probabilities.shape[1] > 2:  # every class's probability (one array per row); score: the predicted one's
            log["score"] = probabilities.max(axis=1)
            log["probabilities"] = list(probabilities)
        else:
            log["score"] = probabilities[:, -1]
    return log
