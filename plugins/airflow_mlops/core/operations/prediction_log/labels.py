"""Delayed labels joined to the predictions they label: by request id (+ row) or by the id column."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airflow_mlops import layout
from airflow_mlops.core.io import storage
from airflow_mlops.core.operations.prediction_log.readers import champion_predictions
from airflow_mlops.spec import PipelineSpec

logger = logging.getLogger(__name__)


def labeled_predictions(
    spec: PipelineSpec, version: str, since: dt.date | None = None, columns: tuple[str, ...] = ()
) -> tuple[Any, list[str]]:
    """The current champion's logged predictions that a delayed label has arrived for.

    Label files (Parquet or CSV) under ``layout.labels_dir`` hold ``spec.data.label`` and
    either ``request_id`` (plus ``row``, default 0) or the id column. A request-keyed label
    joins its prediction exactly; an id-keyed label joins the latest prediction of that id.
    Without ``data.id_column`` labels join by ``request_id`` (+ ``row``) only.
    A key labeled twice keeps its last label (files in name order). Only the prediction log's
    date partitions from ``since`` on are read (``None``: every partition). Returns the joined
    rows (prediction, score, the logged model inputs named in ``columns``, the label) and the
    label files that could not be used.
    """
    import pandas as pd

    label, id_column = spec.data.label, spec.data.id_column
    keys = ["request_id", *([id_column] if id_column else [])]
    by_request, by_id, unusable = [], [], []
    for uri in storage.list_files_recursive(layout.labels_dir(spec.name)):
        frame = _read_label_file(uri, [label, "request_id", "row", *keys[1:]])
        if label not in frame.columns or not (set(keys) & set(frame.columns)):
            needs = f"request_id or '{id_column}'" if id_column else "request_id (the spec has no data.id_column)"
            logger.warning("label file %s ignored: it needs '%s' and %s", uri, label, needs)
            unusable.append(uri)
            continue
        frame = frame[frame[label].notna()]
        if "request_id" in frame.columns:
            keyed = pd.DataFrame(
                {
                    "request_id": frame["request_id"].astype(str).to_numpy(),
                    "row": frame["row"].fillna(0).astype("int64").to_numpy() if "row" in frame.columns else 0,
                    "label": frame[label].to_numpy(),
                }
            )
            by_request.append(keyed)
        else:
            keyed = pd.DataFrame({"id": frame[id_column].astype(str).to_numpy(), "label": frame[label].to_numpy()})
            by_id.append(keyed)
    if not by_request and not by_id:
        return None, unusable

    request_labels = (
        pd.concat(by_request, ignore_index=True).drop_duplicates(["request_id", "row"], keep="last")
        if by_request
        else None
    )
    id_labels = pd.concat(by_id, ignore_index=True).drop_duplicates("id", keep="last") if by_id else None
    predictions = champion_predictions(
        spec,
        version,
        since,
        request_ids=None if request_labels is None else set(request_labels["request_id"]),
        ids=None if id_labels is None else set(id_labels["id"]),
        columns=columns,
    )
    joined = []
    if request_labels is not None:
        joined.append(predictions.merge(request_labels, on=["request_id", "row"], how="inner"))
    if id_labels is not None:
        # Stable sort: a tie in time keeps log order, so "latest" is the last logged.
        latest = predictions.sort_values("logged_at", kind="stable").drop_duplicates("id", keep="last")
        joined.append(latest.merge(id_labels, on="id", how="inner"))
    result = pd.concat(joined, ignore_index=True).drop_duplicates(["request_id", "row"], keep="first")
    return result.reset_index(drop=True), unusable


def _read_label_file(uri: str, wanted: list[str]) -> Any:
    """The ``wanted`` columns a label file has (keys read as text, as they are joined)."""
    import pandas as pd
    import pyarrow.parquet as pq

    with storage.local_copy(uri) as path:
        if path.endswith(".csv"):
            keys = {column: str for column in wanted if column not in ("row", wanted[0])}
            return pd.read_csv(path, usecols=lambda column: column in wanted, dtype=keys)
        present = [column for column in wanted if column in pq.read_schema(path).names]
        return pq.read_table(path, columns=present).to_pandas()
