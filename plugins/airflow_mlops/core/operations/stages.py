"""Operate stages: batch scoring with the champion, prediction logging, drift monitoring."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from airflow_mlops import layout as settings
from airflow_mlops.core.data.schema_changes import apply_renames, under_learned_names
from airflow_mlops.core.errors import NothingToProcessError
from airflow_mlops.core.io import storage, tables
from airflow_mlops.core.registry import tracking as registry
from airflow_mlops.spec import PipelineSpec

logger = logging.getLogger(__name__)


def score_batches(spec: PipelineSpec, tracking_uri: str, uris: list[str], run_id: str) -> dict[str, Any]:
    """Score ``uris`` with the champion; write predictions and one log record per prediction.

    Each file is read, scored and logged ``spec.scoring.chunk_rows`` rows at a time (Parquet
    record batches; CSV and JSON Lines are first converted chunk by chunk to a temporary
    Parquet file, typed like ingestion types them), so memory stays bounded by the chunk
    whatever the file's size. A file passes validation whole, read column by column, before
    any of its rows is scored. Every log (one per input file, one row group per chunk) and
    every labeled-feedback copy is written under a temporary name and published only once
    all inputs are scored: a failure leaves no partial log behind.

    Batches that already carry the label (ground truth known) are also copied into the
    labeled history, so the next training run learns from them: as
    ``<input name without its data suffix>.<run id>-<input index>.parquet``, never over a
    file that exists (only a retry of the same run names the same copy; it is kept).
    """
    if not uris:
        raise ValueError(f"nothing to score for pipeline '{spec.name}': no input URIs")
    name = spec.registered_model_name
    current = registry.champion(tracking_uri, name)
    if current is None:
        # A failure, not a skip: the claimed batch stays in the lake and the run can be cleared later.
        raise LookupError(f"model '{name}' has no champion yet; run the training DAG first")
    model = under_learned_names(registry.load_model(tracking_uri, f"models:/{name}/{current.version}"), spec)

    logged_at = dt.datetime.now(dt.UTC)
    log_folder = settings.prediction_log_partition(spec.name, logged_at.date())
    run_folder = settings.run_dir(spec.name, run_id, "score")
    log_uris, feedback, rows = [], [], 0
    staged: list[tuple[str, str]] = []  # (local temporary file, where it is published)
    with tempfile.TemporaryDirectory(prefix="airflow-mlops-score-") as tmp:
        for index, uri in enumerate(uris):
            with _as_parquet(uri, spec, tmp) as path:
                labels_ok = _validate_file(path, spec)
                # Names sort by time: monitoring reads "the latest" logs by name.
                log_name = f"part-{logged_at:%Y%m%dT%H%M%S%f}-{settings.safe_segment(run_id)}-{index:04d}.parquet"
                log_path = os.path.join(tmp, f"log-{index:04d}.parquet")
                context = _LogContext(name, str(current.version), uri, logged_at)
                rows += _score_file(path, log_path, model, spec, context)
                staged.append((log_path, settings.join(log_folder, log_name)))
                log_uris.append(staged[-1][1])
                if labels_ok:
                    copy = os.path.join(tmp, f"feedback-{index:04d}.parquet")
                    shutil.copyfile(path, copy)
                    target = settings.join(settings.lake_dir(spec.name, "labeled"), _feedback_name(uri))
                    staged.append((copy, target))
                    feedback.append(target)
        for local, target in staged:
            if target in feedback and storage.exists(target):
                # Only scoring the same input again names the same copy: never overwrite, never add twice.
                logger.warning("labeled-history copy %s already exists; kept as it is", target)
                continue
            storage.move_file(local, target)  # renamed (or uploaded) into place, never seen half written
    summary = {
        "model_name": name,
        "model_version": str(current.version),
        "rows": rows,
        "inputs": uris,
        "prediction_log_uris": log_uris,
        "labeled_feedback_uris": feedback,
    }
    storage.write_json(summary, settings.join(run_folder, "summary.json"))
    return summary


@dataclass(frozen=True)
class _LogContext:
    """What every log row of one input file shares."""

    model_name: str
    model_version: str
    source_uri: str
    logged_at: dt.datetime


def _feedback_name(uri: str) -> str:
    """The labeled-history copy's name: Parquet whatever the input's format, one per input.

    Only the data suffix is stripped (``sales.2026-01.csv`` -> ``sales.2026-01``) and a hash
    of the input's URI follows: two inputs never map to the same copy, and scoring the same
    input again (a manual re-run) names the same copy, which is then kept, so its rows never
    enter the training history twice.
    """
    import hashlib

    from airflow_mlops.core.data.ingest import SUFFIXES

    base = uri.rsplit("/", 1)[-1]
    lowered = base.lower()
    suffix = next((s for s in sorted(SUFFIXES, key=len, reverse=True) if lowered.endswith(s)), "")
    stem = base[: len(base) - len(suffix)] or "batch"
    return f"{stem}.{hashlib.sha256(uri.encode()).hexdigest()[:12]}.parquet"


@contextmanager
def _as_parquet(uri: str, spec: PipelineSpec, tmp: str) -> Iterator[str]:
    """A local Parquet file holding ``uri``'s rows: the file itself, or a chunkwise conversion.

    CSV (with ``data.source.csv``'s parsing options) and JSON Lines are read in chunks as
    ingestion reads them and cast to the declared column types; the file's schema is fixed
    from the declared types (``_conversion_schema``) and every chunk is cast to it, so a
    column that is empty, or whole numbers, in the first chunk does not break a later one.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_mlops.core.data import ingest

    if ingest.format_of(uri, None) == "parquet":
        with storage.local_copy(uri) as path:
            yield path
        return
    source = spec.data.source.model_copy(update={"format": None, "chunk_rows": spec.scoring.chunk_rows})
    path = os.path.join(tmp, f"input-{uuid.uuid4().hex}.parquet")
    types = spec.declared_types
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    try:
        for raw in ingest.read_chunks(uri, source):
            table = pa.Table.from_pandas(ingest.cast_declared(raw, types, uri), preserve_index=False)
            if writer is None:
                schema = _conversion_schema(table.schema, types)
                writer = pq.ParquetWriter(path, schema)
            writer.write_table(_conform(table, schema, uri))
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise ingest.IngestError("no data rows (only a header?)", uri)
    try:
        yield path
    finally:
        os.remove(path)


_DECLARED_ARROW = {"float": "float64", "int": "int64", "string": "string", "bool": "bool"}


def _conversion_schema(first: Any, types: dict[str, str]) -> Any:
    """The converted file's schema, fixed before any row is written: the first chunk's columns,
    typed as declared (``data.dtypes``, feature defaults). An undeclared column keeps the first
    chunk's type, except that a column with no value yet is text and whole numbers are floats
    (JSON Lines make an int column float as soon as a value is missing or fractional)."""
    import pyarrow as pa

    fields = []
    for field in first:
        kind = types.get(field.name)
        if kind == "datetime":
            target = pa.timestamp("ns", tz="UTC")
        elif kind is not None:
            target = pa.type_for_alias(_DECLARED_ARROW[kind])
        elif pa.types.is_null(field.type) or pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            target = pa.string()
        elif pa.types.is_integer(field.type):
            target = pa.float64()
        else:
            target = field.type
        fields.append(pa.field(field.name, target))
    return pa.schema(fields)


def _conform(table: Any, schema: Any, uri: str) -> Any:
    """``table`` cast to ``schema``: a column it lacks is null, a column the first chunk lacked is dropped."""
    import pyarrow as pa

    from airflow_mlops.core.data.ingest import IngestError

    dropped = [name for name in table.column_names if name not in schema.names]
    if dropped:
        logger.warning("%s: column(s) %s first appear after the first chunk; not kept", uri, dropped)
    columns = []
    for field in schema:
        if field.name not in table.column_names:
            columns.append(pa.nulls(len(table), field.type))
            continue
        try:
            columns.append(table[field.name].cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise IngestError(
                f"column '{field.name}' holds {table[field.name].type} values that do not fit its type "
                f"{field.type} (set by its declared type, or by the first chunk: declare it in data.dtypes): {exc}",
                uri,
            ) from None
    return pa.Table.from_arrays(columns, schema=schema)


def _validate_file(path: str, spec: PipelineSpec) -> bool:
    """Validate the whole file, column by column; raise if it cannot be scored.

    Returns whether its labels are valid too (it carries the label and passes the full
    suite, label included): only then does it join the labeled history.
    """
    from airflow_mlops.core.data.validation.plan import parquet_source
    from airflow_mlops.core.data.validation.suite import DataValidationError, validate_batch

    with parquet_source(path) as source:
        if spec.data.label not in source.columns:
            validate_batch(source, spec, require_label=False)
            return False
        try:
            validate_batch(source, spec, require_label=True)
            return True
        except DataValidationError as exc:
            # Fails without the label too? Then the batch cannot be scored: that error is raised.
            validate_batch(source, spec, require_label=False)
            logger.warning("scored batch not added to the labeled history: %s", exc)
            return False


def _score_file(path: str, out_path: str, model: Any, spec: PipelineSpec, context: _LogContext) -> int:
    """Score the Parquet file at ``path`` chunk by chunk into the log at ``out_path`` (a row group per chunk)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = list(dict.fromkeys([*([spec.data.id_column] if spec.data.id_column else []), *spec.data.features.all]))
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    rows = 0
    try:
        with open(path, "rb") as handle:
            # pre_buffer=False: pyarrow would otherwise keep every row group it read until the file closes.
            parquet = pq.ParquetFile(handle, pre_buffer=False)
            for batch in parquet.iter_batches(batch_size=spec.scoring.chunk_rows, columns=columns):
                log = prediction_log_frame(batch.to_pandas(), model, spec, context)
                table = _log_table(log, model)
                if writer is None:
                    schema = table.schema
                    writer = pq.ParquetWriter(out_path, schema)
                writer.write_table(table.cast(schema), row_group_size=max(len(table), 1))
                rows += len(table)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise ValueError(f"{context.source_uri}: no rows to score")
    return rows


def _log_table(log: Any, model: Any) -> Any:
    """A chunk's prediction log as Arrow; each row's class probabilities (``prediction_log_frame``
    keeps them as arrays) become the log's map column, named by the model's class labels."""
    import pyarrow as pa

    from airflow_mlops.core.operations.prediction_log import probability_map

    if "probabilities" not in log.columns:
        return pa.Table.from_pandas(log, preserve_index=False)
    table = pa.Table.from_pandas(log.drop(columns=["probabilities"]), preserve_index=False)
    labels = tuple(str(c) for c in model.classes_)
    matrix = np.vstack(log["probabilities"].to_numpy()) if len(log) else np.zeros((0, len(labels)))
    return table.append_column("probabilities", probability_map([(0, matrix, labels)], len(log)))


def prediction_log_frame(frame: Any, model: Any, spec: PipelineSpec, context: _LogContext) -> Any:
    """The prediction log of one chunk of a batch: one row per input row, each its own request.

    Columns: request_id, row, logged_at, model_name, model_version, source_uri, the id
    column (absent when the spec has none), the model inputs (``feature_frame``), prediction
    and (classifiers) score; more than two classes add ``probabilities``, one array per row
    (``_log_table`` writes them as the log's map column).
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


def _prediction_drift(spec: PipelineSpec, model: Any, reference: Any, current_log: Any) -> Any:
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


def labeled_predictions(spec: PipelineSpec, version: str, since: dt.date | None = None) -> tuple[Any, list[str]]:
    """The current champion's logged predictions that a delayed label has arrived for.

    Label files (Parquet or CSV) under ``settings.labels_dir`` hold ``spec.data.label`` and
    either ``request_id`` (plus ``row``, default 0) or the id column. A request-keyed label
    joins its prediction exactly; an id-keyed label joins the latest prediction of that id.
    Without ``data.id_column`` labels join by ``request_id`` (+ ``row``) only.
    A key labeled twice keeps its last label (files in name order). Only the prediction log's
    date partitions from ``since`` on are read (``None``: every partition). Returns the joined
    rows (prediction, score, the label) and the label files that could not be used.
    """
    import pandas as pd

    label, id_column = spec.data.label, spec.data.id_column
    keys = ["request_id", *([id_column] if id_column else [])]
    by_request, by_id, unusable = [], [], []
    for uri in storage.list_files_recursive(settings.labels_dir(spec.name)):
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
    predictions = _champion_predictions(
        spec,
        version,
        since,
        request_ids=None if request_labels is None else set(request_labels["request_id"]),
        ids=None if id_labels is None else set(id_labels["id"]),
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


def promotion_day(version: Any) -> dt.date | None:
    """The (UTC) day ``version`` became champion: its ``promotion`` tag, else its registration."""
    record = (getattr(version, "tags", None) or {}).get("promotion")
    if record:
        try:
            at = dt.datetime.fromisoformat(str(json.loads(record)["at"]))
            return (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).date()
        except (ValueError, TypeError, KeyError):
            logger.warning("unreadable promotion tag on v%s: %r", getattr(version, "version", "?"), record)
    created = getattr(version, "creation_timestamp", None)
    if created:
        return dt.datetime.fromtimestamp(int(created) / 1000, dt.UTC).date()
    return None


def prediction_log_files(pipeline: str, since: dt.date | None, until: dt.date | None = None) -> list[str]:
    """The prediction log files in the date partitions from ``since`` to ``until`` (default: tomorrow,
    for clocks a little ahead), oldest first; ``since=None``: every partition."""
    if since is None:
        return storage.list_files_recursive(settings.prediction_log_dir(pipeline), (".parquet",))
    until = until or dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    files: list[str] = []
    day = since
    while day <= until:
        files.extend(storage.list_files(settings.prediction_log_partition(pipeline, day), (".parquet",)))
        day += dt.timedelta(days=1)
    return files


def _read_log_file(uri: str, columns: list[str], version: str) -> Any:
    """The rows ``version`` logged in one log file, only ``columns`` (those it has), as an Arrow
    table; the version filter runs in the Parquet reader (row groups of other versions are skipped)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    with storage.local_copy(uri) as path:
        schema = pq.read_schema(path)
        if "model_version" not in schema.names:
            return None
        present = [c for c in dict.fromkeys(["model_version", *columns]) if c in schema.names]
        kind = schema.field("model_version").type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            return pq.read_table(path, columns=present, filters=pc.field("model_version") == version, partitioning=None)
        table = pq.read_table(path, columns=present, partitioning=None)  # e.g. versions written as numbers
    return table.filter(pc.equal(pc.cast(table["model_version"], pa.string()), version))


def _champion_predictions(
    spec: PipelineSpec,
    version: str,
    since: dt.date | None = None,
    request_ids: set[str] | None = None,
    ids: set[str] | None = None,
) -> Any:
    """Keys, time and outputs of the predictions ``version`` logged from ``since`` on (only those
    columns are read); with ``request_ids``/``ids``, only the rows one of them labels."""
    import pandas as pd

    id_column = spec.data.id_column
    wanted = ["request_id", "row", "logged_at", *([id_column] if id_column else []), "prediction", "score"]
    wanted.append("probabilities")  # models of more than two classes log every class's probability
    frames = []
    for uri in prediction_log_files(spec.name, since):
        table = _read_log_file(uri, wanted, version)
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
            ).reset_index(drop=True)
        )
    if not frames:
        return pd.DataFrame(columns=["request_id", "row", "logged_at", "id", "prediction", "score"])
    return pd.concat(frames, ignore_index=True)


class _LoggedPredictions:
    """The champion's logged outputs, shaped like a model for ``training.evaluate``."""

    def __init__(self, joined: Any, classes: list[Any] | None) -> None:
        self._joined = joined
        if classes is not None:
            self.classes_ = np.asarray(classes)

    def predict(self, features: Any) -> Any:
        return self._joined["prediction"].to_numpy()


class _LoggedScores(_LoggedPredictions):
    """... and the positive class's logged score, for roc_auc and log_loss (binary classifiers)."""

    def predict_proba(self, features: Any) -> Any:
        score = self._joined["score"].to_numpy(dtype="float64")
        return np.column_stack([1.0 - score, score])


class _LoggedProbabilities(_LoggedPredictions):
    """... and every class's logged probability (models of more than two classes), in ``classes`` order."""

    def predict_proba(self, features: Any) -> Any:
        labels = [str(c) for c in self.classes_]
        return np.asarray([[dict(row)[label] for label in labels] for row in self._joined["probabilities"]])


def _labeled_metrics(joined: Any, spec: PipelineSpec, model: Any) -> tuple[dict[str, float], int]:
    """The task's metrics (``training.evaluate``) of the logged predictions against the labels,
    and how many labeled predictions they were computed on (labels that are no value of the
    predictions' type, e.g. text among numbers, are left out)."""
    import pandas as pd

    from airflow_mlops.core.model.training import evaluate

    truth = joined["label"]
    predicted = joined["prediction"]
    if pd.api.types.is_numeric_dtype(predicted) and not pd.api.types.is_numeric_dtype(truth):
        truth = pd.to_numeric(truth, errors="coerce")  # e.g. labels "0"/"1" read as text
    elif not pd.api.types.is_numeric_dtype(predicted) and pd.api.types.is_numeric_dtype(truth):
        truth = truth.astype(str)
    joined = joined.assign(label=truth)[truth.notna().to_numpy()].reset_index(drop=True)
    if joined.empty:
        return {}, 0
    # evaluate() takes the model's inputs; the logged outputs stand in for the model, so none are needed.
    frame = pd.DataFrame({column: np.full(len(joined), np.nan) for column in spec.data.features.all})
    frame[spec.data.label] = joined["label"].to_numpy()
    if spec.model.task == "regression":
        return evaluate(_LoggedPredictions(joined, None), frame, spec), len(joined)
    classes = list(getattr(model, "classes_", sorted(set(frame[spec.data.label]) | set(joined["prediction"]))))
    stand_in = _LoggedPredictions(joined, classes)
    if len(classes) == 2 and joined["score"].notna().all():
        stand_in = _LoggedScores(joined, classes)
    elif len(classes) > 2 and "probabilities" in joined.columns and joined["probabilities"].notna().all():
        stand_in = _LoggedProbabilities(joined, classes)
    try:
        return evaluate(stand_in, frame, spec), len(joined)
    except ValueError as exc:  # e.g. roc_auc with one class among the labels
        logger.warning("score-based metrics undefined on the labeled predictions: %s", exc)
        return evaluate(_LoggedPredictions(joined, classes), frame, spec), len(joined)


def assess_performance(spec: PipelineSpec, current: Any, model: Any) -> dict[str, Any] | None:
    """Metrics of the champion on its delayed labels vs its own test metrics; None without labels.

    Decay needs ``monitoring.min_labeled_rows`` labeled predictions (those the metrics use) and
    the promotion metric worse than the champion's ``test_<metric>`` tag by more than
    ``monitoring.max_metric_drop``. Only predictions logged since the champion's promotion day
    are read.
    """
    joined, unusable = labeled_predictions(spec, str(current.version), promotion_day(current))
    if joined is None:
        return None
    metric = spec.promotion.metric
    minimum, allowed = spec.monitoring.min_labeled_rows, spec.monitoring.max_metric_drop
    metrics, labeled = _labeled_metrics(joined, spec, model) if len(joined) else ({}, 0)
    tag = current.tags.get(f"test_{metric}")
    test_value = float(tag) if tag not in (None, "") else None
    value = metrics.get(metric)
    higher = spec.promotion.higher_is_better
    drop = None
    if value is not None and test_value is not None:
        drop = (test_value - value) if higher else (value - test_value)
    if labeled < minimum:
        decision, decayed = f"no decision: {labeled} labeled prediction(s), fewer than {minimum}", False
    elif value is None or test_value is None or drop is None or not np.isfinite(drop):
        missing = "the labeled predictions" if value is None else f"the champion's test_{metric} tag"
        decision, decayed = f"no decision: {metric} is not available for {missing}", False
    else:
        decayed = drop > allowed
        worse = f"{drop:.4f} worse than" if drop > 0 else "not worse than"
        decision = (
            f"{metric} {value:.4f} on {labeled} labeled predictions is {worse} the champion's test value "
            f"{test_value:.4f} (allowed drop {allowed:g})"
        )
    return {
        "metric": metric,
        "higher_is_better": higher,
        "value": value,
        "test_value": test_value,
        "drop": drop,
        "max_metric_drop": allowed,
        "labeled_rows": labeled,
        "min_labeled_rows": minimum,
        "metrics": metrics,
        "decayed": decayed,
        "decision": decision,
        "unusable_label_files": unusable,
    }


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
    if start is None:
        files = storage.list_files_recursive(settings.prediction_log_dir(spec.name), (".parquet",))
        return files[-(spec.monitoring.lookback_batches or 1) :]
    return prediction_log_files(spec.name, start.date())


def _champion_log(
    spec: PipelineSpec, uris: list[str], version: str, start: dt.datetime | None
) -> tuple[Any, list[str]]:
    """The newest ``monitoring.max_rows`` predictions ``version`` logged in ``uris`` (at or after
    ``start``), with only the columns drift needs, and the files they came from. Files are read
    newest first and reading stops once enough rows are in."""
    import pandas as pd

    columns = ["logged_at", *spec.data.features.all, "prediction", "score"]
    limit = spec.monitoring.max_rows
    frames, used, rows = [], [], 0
    for uri in reversed(uris):
        table = _read_log_file(uri, columns, version)
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


def _performance_summary(performance: dict[str, Any] | None) -> dict[str, Any] | None:
    """What of the performance check travels in XCom and the drift event (small, no file lists)."""
    if performance is None:
        return None
    keys = ("metric", "value", "test_value", "drop", "max_metric_drop", "labeled_rows", "min_labeled_rows")
    summary = {key: performance[key] for key in keys}
    summary.update(decayed=performance["decayed"], decision=performance["decision"], metrics=performance["metrics"])
    return summary


def monitor_drift(spec: PipelineSpec, tracking_uri: str, log_uris: list[str], run_id: str) -> dict[str, Any]:
    """Compare logged features with the champion's training reference, and its logged predictions
    with the delayed labels that arrived (performance decay); log both to MLflow.

    ``retrain`` is true, with its ``retrain_reasons``, when the features drifted or the
    champion's performance on labeled predictions decayed.
    """
    import mlflow

    from airflow_mlops.core.operations.drift.detect import DriftReport, detect_drift
    from airflow_mlops.core.operations.drift.report import render_drift_html
    from airflow_mlops.core.operations.drift.statistics import thresholds

    name = spec.registered_model_name
    current = registry.champion(tracking_uri, name)
    if current is None:
        raise NothingToProcessError(f"model '{name}' has no champion yet; nothing to monitor")
    reference_uri = current.tags.get("reference_uri")
    if not reference_uri:
        raise LookupError(f"champion {name} v{current.version} has no reference_uri tag")
    version = str(current.version)
    # The logs an event named are read whole; a calendar run reads the lookback window.
    start = None if log_uris else lookback_start(spec)
    log_uris = log_uris or recent_prediction_logs(spec)
    # Only predictions of the current champion count: once a retrained model is promoted, the
    # logs that triggered it no longer raise the same alarm on every calendar run.
    current_log, read_uris = _champion_log(spec, log_uris, version, start)
    no_data: str | None = None  # why drift could not be measured
    if current_log.empty:
        window = f" of the last {spec.monitoring.lookback_hours:g} hours" if start is not None else ""
        no_data = (
            f"no predictions by the current champion {name} v{version} in {len(log_uris)} log file(s){window}"
            if log_uris
            else f"no prediction logs for pipeline '{spec.name}' to monitor"
        )
        if not storage.list_files_recursive(settings.labels_dir(spec.name)):
            raise NothingToProcessError(no_data)
    model = under_learned_names(registry.load_model(tracking_uri, f"models:/{name}/{version}"), spec)
    performance = assess_performance(spec, current, model)
    if current_log.empty:
        if performance is None:
            raise NothingToProcessError(f"{no_data}, and no delayed labels of its predictions")
        # Nothing to compare for drift; the delayed labels are still judged.
        logger.warning("%s: drift not measured, performance judged on delayed labels", no_data)
        reference = current_log.iloc[:0]
        report = DriftReport(
            drift_detected=False,
            drifted_features=[],
            min_drifted_features=spec.monitoring.min_drifted_features,
            reference_rows=0,
            current_rows=0,
            alpha=spec.monitoring.alpha,
            thresholds=thresholds(spec.monitoring),
        )
        output = None
    else:
        reference = apply_renames(tables.read_table(reference_uri), spec)  # a champion from before data.renamed
        report = detect_drift(
            reference,
            current_log,
            spec.data.features.numeric,
            spec.data.features.categorical,
            min_drifted_features=spec.monitoring.min_drifted_features,
            bins=spec.monitoring.bins,
            alpha=spec.monitoring.alpha,
            **thresholds(spec.monitoring),
        )
        output = _prediction_drift(spec, model, reference, current_log)
    reasons = [
        *(["drift"] if report.drift_detected else []),
        *(["performance_decay"] if performance and performance["decayed"] else []),
    ]
    folder = settings.run_dir(spec.name, run_id, "monitor")
    report_uri = settings.join(folder, "drift_report.json")
    storage.write_json(
        {
            "current": read_uris,
            "lookback_start": start.isoformat() if start is not None else None,
            "drift_measured": no_data is None,
            "no_drift_data": no_data,
            "reference": reference_uri,
            **report.as_dict(),
            "prediction_drift": asdict(output) if output else None,
            "performance": performance,
            "retrain_reasons": reasons,
        },
        report_uri,
    )
    page = render_drift_html(
        report,
        reference,
        current_log,
        f"{spec.name}: drift of {name} v{version}'s inputs"
        + (f" (not measured: {no_data})" if no_data else f" ({report.current_rows:,} logged predictions)"),
        performance=performance,
    )
    html_uri = storage.write_bytes(page.encode("utf-8"), settings.join(folder, "drift_report.html"))

    registry.use_experiment(tracking_uri, f"{spec.name}_monitoring")
    with mlflow.start_run(run_name=run_id) as run:
        mlflow.set_tags({"model_name": name, "model_version": str(current.version), "airflow.run_id": run_id})
        # Column names may hold characters MLflow refuses in metric names (parentheses, ...).
        key = registry.metric_name
        mlflow.log_metrics({key(f"psi_{k}"): v for k, v in report.scores().items()})
        mlflow.log_metrics({key(f"effect_{f.feature}"): f.effect for f in report.features if f.effect is not None})
        mlflow.log_metrics({key(f"p_value_{f.feature}"): f.p_value for f in report.features if f.p_value is not None})
        mlflow.log_metrics({"drifted_features": len(report.drifted_features), "current_rows": report.current_rows})
        if output is not None:
            p_value = output.p_value if output.p_value is not None else 1.0
            mlflow.log_metrics(
                {"prediction_psi": output.psi, "prediction_ks": output.effect or 0.0, "prediction_p_value": p_value}
            )
        if performance is not None:
            mlflow.log_metrics(
                {
                    "labeled_rows": performance["labeled_rows"],
                    "performance_decay": float(performance["decayed"]),
                    **{f"labeled_{key}": value for key, value in performance["metrics"].items()},
                    **({"labeled_metric_drop": performance["drop"]} if performance["drop"] is not None else {}),
                }
            )
            mlflow.log_dict(performance, "performance.json")
        mlflow.set_tag("retrain", ",".join(reasons) or "no")
        mlflow.log_dict(report.as_dict(), "drift_report.json")
        mlflow.log_text(page, "drift_report.html")
    return {
        "drift_detected": report.drift_detected,
        "drift_measured": no_data is None,
        "current_rows": report.current_rows,
        "drifted_features": report.drifted_features,
        "scores": report.scores(),
        "prediction_drift": (
            {"psi": round(output.psi, 6), "ks": output.effect, "drifted": output.drifted} if output else None
        ),
        "psi_threshold": report.psi_threshold,
        "performance": _performance_summary(performance),
        "performance_decay": bool(performance and performance["decayed"]),
        "retrain": bool(reasons),
        "retrain_reasons": reasons,
        "model_version": str(current.version),
        "report_uri": report_uri,
        "html_report_uri": html_uri,
        "mlflow_run_id": run.info.run_id,
    }
