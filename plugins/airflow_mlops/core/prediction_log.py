"""One log record per prediction, buffered in memory and written as partitioned Parquet.

The serving app calls ``PredictionLogger.append`` once per request (a cheap list
append); a background thread turns the buffer into one Parquet file when it holds
``flush_rows`` rows or every ``flush_seconds``, and ``close`` writes what is left, so a
graceful shutdown loses nothing. Files go to
``<prediction_log_dir>/date=YYYY-MM-DD/part-<time>-<source>-<host>-<pid>-<seq>.parquet``:
names sort by time (monitoring reads "the latest" logs by name), the date partition is
the day the prediction was made (UTC), and each file is written atomically (a temporary
name renamed into place locally, one PUT on S3), so a reader never sees half a file.

A write that fails (object store down) keeps its records and is retried at the next
flush; if more than ``max_pending_rows`` wait, the oldest are dropped and counted
(``dropped_rows``), so an outage of the store cannot exhaust the server's memory.

The schema is the one batch scoring writes: request_id, row (index in the request),
logged_at, model_name, model_version, source_uri, the id column, the model inputs
(numbers as float64, categories as text with "" for missing), prediction, score
(classification: probability of the last class).
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from airflow_mlops.core import settings, storage

logger = logging.getLogger(__name__)


@dataclass
class _Record:
    """The predictions of one request, as columns."""

    request_id: str
    logged_at: float
    model_version: str
    rows: int
    ids: list[Any] | None
    features: dict[str, np.ndarray]
    predictions: np.ndarray
    scores: np.ndarray | None


class PredictionLogger:
    """Buffered, partitioned Parquet log of predictions (thread-safe ``append``).

    :param folder: the pipeline's prediction log folder (local path, file:// or s3://).
    :param model_name: registered model name written on every record.
    :param id_column: name of the entity id column (values come with the request, or null).
    :param numeric: numeric model inputs (float64 in the log), derived ones included.
    :param categorical: categorical model inputs (text in the log).
    :param source: what made the predictions (``serving``); part of the file name.
    :param flush_rows: write a file once this many rows wait.
    :param flush_seconds: write what waits at least this often.
    :param max_pending_rows: cap on rows kept while writes fail.
    """

    def __init__(
        self,
        folder: str,
        model_name: str,
        id_column: str,
        numeric: list[str],
        categorical: list[str],
        *,
        source: str = "serving",
        flush_rows: int = 10_000,
        flush_seconds: float = 5.0,
        max_pending_rows: int = 2_000_000,
    ) -> None:
        if flush_rows < 1 or flush_seconds <= 0:
            raise ValueError("flush_rows must be >= 1 and flush_seconds > 0")
        self.folder = folder
        self.model_name = model_name
        self.id_column = id_column
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        self.source = source
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.max_pending_rows = max_pending_rows
        self.written_rows = 0
        self.dropped_rows = 0
        self.files: list[str] = []
        self._buffer: list[_Record] = []
        self._buffered_rows = 0
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sequence = 0
        self._name_suffix = (
            f"{settings.safe_segment(source)}-{settings.safe_segment(socket.gethostname())}-{os.getpid()}"
        )
        self._thread: threading.Thread | None = None

    # -- the request path -------------------------------------------------------------

    def append(
        self,
        request_id: str,
        model_version: str,
        features: dict[str, np.ndarray],
        predictions: np.ndarray,
        scores: np.ndarray | None,
        ids: list[Any] | None = None,
        logged_at: float | None = None,
    ) -> None:
        """Queue the predictions of one request; O(1), the arrays are not copied."""
        record = _Record(
            request_id, time.time() if logged_at is None else logged_at, model_version, len(predictions), ids,
            features, predictions, scores,
        )  # fmt: skip
        with self._lock:
            self._buffer.append(record)
            self._buffered_rows += record.rows
            full = self._buffered_rows >= self.flush_rows
        if full:
            self._wake.set()

    @property
    def pending_rows(self) -> int:
        return self._buffered_rows

    # -- the background writer --------------------------------------------------------

    def start(self) -> PredictionLogger:
        """Start the thread that flushes by size and by time."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.flush()
            except Exception:  # kept and retried by flush(); never kill the writer thread
                logger.exception("prediction log flush failed; records kept for the next attempt")

    def close(self) -> None:
        """Stop the writer and write everything still buffered (graceful shutdown)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()

    def flush(self) -> list[str]:
        """Write the buffered records, one file per date partition; return the new URIs."""
        with self._write_lock:
            with self._lock:
                records, self._buffer = self._buffer, []
                self._buffered_rows = 0
            if not records:
                return []
            written: list[str] = []
            by_day: dict[str, list[_Record]] = {}
            for record in records:
                day = dt.datetime.fromtimestamp(record.logged_at, dt.UTC).strftime("%Y-%m-%d")
                by_day.setdefault(day, []).append(record)
            remaining = dict(sorted(by_day.items()))
            try:
                for day in list(remaining):
                    written.append(self._write(day, remaining[day]))
                    del remaining[day]
            except Exception:
                self._requeue([r for group in remaining.values() for r in group])
                raise
            return written

    def _requeue(self, records: list[_Record]) -> None:
        """Put records whose write failed back at the head of the buffer, within the cap."""
        with self._lock:
            self._buffer = records + self._buffer
            self._buffered_rows = sum(r.rows for r in self._buffer)
            while self._buffered_rows > self.max_pending_rows and self._buffer:
                oldest = self._buffer.pop(0)
                self._buffered_rows -= oldest.rows
                self.dropped_rows += oldest.rows
                logger.error("prediction log over %d pending rows: dropped %d", self.max_pending_rows, oldest.rows)

    def _write(self, day: str, records: list[_Record]) -> str:
        table = self.table(records)
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        self._sequence += 1
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"part-{stamp}-{self._name_suffix}-{self._sequence:06d}.parquet"
        uri = storage.write_bytes(buffer.getvalue(), settings.join(self.folder, f"date={day}", name))
        self.written_rows += table.num_rows
        self.files.append(uri)
        return uri

    def table(self, records: list[_Record]) -> pa.Table:
        """The records as one Arrow table in the log schema."""
        counts = np.fromiter((r.rows for r in records), dtype=np.int64, count=len(records))
        total = int(counts.sum())
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        columns: dict[str, pa.Array] = {
            "request_id": pa.array(np.repeat(np.array([r.request_id for r in records], dtype=object), counts),
                                   type=pa.string()),
            "row": pa.array(np.arange(total, dtype=np.int64) - starts),
            "logged_at": pa.array(
                np.repeat(np.array([r.logged_at for r in records], dtype=np.float64) * 1e6, counts).astype("int64"),
                type=pa.int64(),
            ).cast(pa.timestamp("us", tz="UTC")),
            "model_name": pa.array([self.model_name] * total, type=pa.string()),
            "model_version": pa.array(
                np.repeat(np.array([r.model_version for r in records], dtype=object), counts), type=pa.string()
            ),
            "source_uri": pa.array([self.source] * total, type=pa.string()),
        }  # fmt: skip
        ids: list[Any] = []
        for record in records:
            ids.extend(record.ids if record.ids is not None else [None] * record.rows)
        columns[self.id_column] = pa.array([None if v is None else str(v) for v in ids], type=pa.string())
        for name in self.numeric:
            columns[name] = pa.array(np.concatenate([r.features[name] for r in records]).astype(np.float64))
        for name in self.categorical:
            columns[name] = pa.array(np.concatenate([r.features[name] for r in records]), type=pa.string())
        predictions = np.concatenate([r.predictions for r in records])
        columns["prediction"] = pa.array(predictions)
        if any(r.scores is not None for r in records):
            columns["score"] = pa.array(
                np.concatenate([r.scores if r.scores is not None else np.full(r.rows, np.nan) for r in records]).astype(
                    np.float64
                )
            )
        return pa.table(columns)
