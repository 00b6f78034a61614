"""Reading the prediction log: files by date partition, one version's rows, the monitoring window."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from airflow_mlops import layout
from airflow_mlops.core.io import storage
from airflow_mlops.spec import PipelineSpec
from airflow_mlops.spec.prediction_log import SHADOW_SOURCE


def prediction_log_files(pipeline: str, since: dt.date | None, until: dt.date | None = None) -> list[str]:
    """The prediction log files in the date partitions from ``since`` to ``until`` (default: tomorrow,
    for clocks a little ahead), oldest first; ``since=None``: every partition."""
    if since is None:
        return storage.list_files_recursive(layout.prediction_log_dir(pipeline), (".parquet",))
    until = until or dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    files: list[str] = []
    day = since
    while day <= until:
        files.extend(storage.list_files(layout.prediction_log_partition(pipeline, day), (".parquet",)))
        day += dt.timedelta(days=1)
    return files


def is_shadow_file(uri: str) -> bool:
    """Whether ``uri`` is a file of the serving app's shadow logger (``part-<time>-shadow-...``)."""
    name = uri.rsplit("/", 1)[-1]
    return name.startswith("part-") and name.split("-", 3)[2:3] == [SHADOW_SOURCE]


def read_log_file(uri: str, columns: list[str], version: str, shadow: bool = False) -> Any:
    """The rows ``version`` logged in one log file, only ``columns`` (those it has), as an Arrow
    table; the version filter runs in the Parquet reader (row groups of other versions are skipped).

    Rows a challenger scored in shadow (``source_uri`` 'shadow', files the serving app's shadow
    logger wrote) are never a version's own answers: left out, or with ``shadow`` the only ones read.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    with storage.local_copy(uri) as path:
        schema = pq.read_schema(path)
        if "model_version" not in schema.names:
            return None
        present = [c for c in dict.fromkeys(["model_version", *columns]) if c in schema.names]
        kind = schema.field("model_version").type
        if "source_uri" in schema.names:
            source = pc.field("source_uri")
            wanted = source == SHADOW_SOURCE if shadow else source.is_null() | (source != SHADOW_SOURCE)
        elif shadow:
            return None
        else:
            wanted = None
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            chosen = pc.field("model_version") == version
            return pq.read_table(
                path, columns=present, filters=chosen if wanted is None else chosen & wanted, partitioning=None
            )
        table = pq.read_table(path, columns=present, filters=wanted, partitioning=None)  # e.g. numeric versions
    return table.filter(pc.equal(pc.cast(table["model_version"], pa.string()), version))


def champion_predictions(
    spec: PipelineSpec,
    version: str,
    since: dt.date | None = None,
    request_ids: set[str] | None = None,
    ids: set[str] | None = None,
    columns: tuple[str, ...] = (),
) -> Any:
    """Keys, time and outputs of the predictions ``version`` logged from ``since`` on (only those
    columns are read, and the model inputs named in ``columns``, e.g. the evaluation's slices);
    with ``request_ids``/``ids``, only the rows one of them labels."""
    import pandas as pd

    id_column = spec.data.id_column
    wanted = ["request_id", "row", "logged_at", *([id_column] if id_column else []), "prediction", "score"]
    wanted.extend(c for c in columns if c not in wanted)
    wanted.append("probabilities")  # models of more than two classes log every class's probability
    frames = []
    for uri in prediction_log_files(spec.name, since):
        table = read_log_file(uri, wanted, version)
        if table is None or table.num_rows == 0:
            continue
        frame = table.to_pandas()
        keys = pd.DataFrame(
            {
                "request_id": frame["request_id"].astype(str).to_numpy(),
                # Logs written before the `row` column hold one-row requests.
                "row": frame["row"].astype("int64").to_numpy() if "row" in frame.columns else 0,
                # No id column (none in the spec, or in this log): no id-keyed label can match.
                "id": frame[id_column].astype(str).to_numpy() if id_column in frame.columns else None,
            }
        )
        if request_ids is not None or ids is not None:
            keep = np.zeros(len(keys), dtype=bool)
            if request_ids is not None:
                keep |= keys["request_id"].isin(request_ids).to_numpy()
            if ids is not None:
                keep |= keys["id"].isin(ids).to_numpy()
            if not keep.any():
                continue
            frame, keys = frame[keep], keys[keep]
        frames.append(
            keys.assign(
                logged_at=pd.to_datetime(frame["logged_at"], utc=True).to_numpy(),
                prediction=frame["prediction"].to_numpy(),
                score=frame["score"].to_numpy(dtype="float64") if "score" in frame.columns else np.nan,
                probabilities=frame["probabilities"].to_numpy() if "probabilities" in frame.columns else None,
                # A model input this log lacks (an older log) is missing on its rows.
                **{c: frame[c].to_numpy() if c in frame.columns else None for c in columns},
            ).reset_index(drop=True)
        )
    if not frames:
        return pd.DataFrame(columns=["request_id", "row", "logged_at", "id", "prediction", "score", *columns])
    return pd.concat(frames, ignore_index=True)


def lookback_start(spec: PipelineSpec, now: dt.datetime | None = None) -> dt.datetime | None:
    """Where a calendar monitoring run's window starts: ``lookback_hours`` ago (None with ``lookback_batches``)."""
    if spec.monitoring.lookback_batches is not None:
        return None
    return (now or dt.datetime.now(dt.UTC)) - dt.timedelta(hours=spec.monitoring.lookback_hours)


def recent_prediction_logs(spec: PipelineSpec, now: dt.datetime | None = None) -> list[str]:
    """The prediction log files a calendar monitoring run reads, oldest first: those of the date
    partitions the ``lookback_hours`` window touches, or the newest ``lookback_batches`` files
    (partition and file names sort by time)."""
    start = lookback_start(spec, now)
    if start is None:  # shadow files hold no champion row: they must not take the place of one
        files = storage.list_files_recursive(layout.prediction_log_dir(spec.name), (".parquet",))
        files = [f for f in files if not is_shadow_file(f)]
        return files[-(spec.monitoring.lookback_batches or 1) :]
    return prediction_log_files(spec.name, start.date())


def champion_log(spec: PipelineSpec, uris: list[str], version: str, start: dt.datetime | None) -> tuple[Any, list[str]]:
    """The newest ``monitoring.max_rows`` predictions ``version`` logged in ``uris`` (at or after
    ``start``), with only the columns drift and the estimate without labels need, and the files
    they came from. Files are read newest first and reading stops once enough rows are in."""
    import pandas as pd

    # Probabilities: models of more than two classes, for the estimate without labels.
    columns = ["logged_at", *spec.data.features.all, "prediction", "score", "probabilities"]
    limit = spec.monitoring.max_rows
    frames, used, rows = [], [], 0
    for uri in reversed(uris):
        table = read_log_file(uri, columns, version)
        if table is None or table.num_rows == 0:
            continue
        frame = table.to_pandas()
        if start is not None:
            frame = frame[pd.to_datetime(frame["logged_at"], utc=True) >= start]
            if frame.empty:
                continue
        frames.append(frame)
        used.append(uri)
        rows += len(frame)
        if rows >= limit:
            break
    if not frames:
        return pd.DataFrame(columns=columns), []
    log = pd.concat(frames[::-1], ignore_index=True)
    if len(log) > limit:
        when = pd.to_datetime(log["logged_at"], utc=True)
        log = log.iloc[np.sort(np.argsort(when.to_numpy(), kind="stable")[-limit:])].reset_index(drop=True)
    return log, used[::-1]
