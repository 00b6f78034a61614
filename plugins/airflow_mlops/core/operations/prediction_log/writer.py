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
flush. ``max_pending_rows`` bounds the rows held (waiting, or in a write under way) at
every append: a request whose rows would pass it is answered but not logged, so an outage
of the store cannot exhaust the server's memory. Every row not logged, at append, after a
failed write or at shutdown, is counted in ``dropped_rows`` and reported in the log: at
once for the first, then in one line per ``DROP_REPORT_SECONDS`` with the count since the
last line, and the rest when the log closes.

The columns, their order and types are defined once, in ``spec.prediction_log`` (this
writer and batch scoring's ``prediction_log.batch`` are both tested against it): the request
and model columns, the id column when the spec has one, the model inputs (numbers as float64,
categories as text with "" for missing), then prediction, score and, for more than two
classes, ``probabilities``.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import socket
import tempfile
import threading
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from airflow_mlops import layout
from airflow_mlops.core.io import storage
from airflow_mlops.core.operations.prediction_log.blocks import SEPARATOR, Block, constant_column, repeated_column

logger = logging.getLogger(__name__)


BLOCK_ROWS = 16_384  # rows per preallocated block; a flush writes all full blocks as one file


# What close() gives the store at shutdown before it spills to local disk; the process's own
# grace period (uvicorn's, the orchestrator's stop timeout) must be longer (test_compose.py).
CLOSE_DEADLINE_SECONDS = 20.0


DROP_REPORT_SECONDS = 10.0  # at most one "rows not logged" line this often (the count is exact)


class PredictionLogger:
    """Buffered, partitioned Parquet log of predictions (thread-safe ``append``).

    :param folder: the pipeline's prediction log folder (local path, file:// or s3://).
    :param model_name: registered model name written on every record.
    :param id_column: name of the entity id column (values come with the request, or null);
        ``None`` when the spec has no id: the log then has no id column.
    :param numeric: numeric model inputs (float64 in the log), derived ones included.
    :param categorical: categorical model inputs (text in the log).
    :param source: what made the predictions (``serving``); part of the file name.
    :param client_request_ids: write the ``client_request_id`` column (the serving app: the id a
        client sent, kept apart from ``request_id``, which the server makes and which labels join by).
    :param flush_rows: write a file once this many rows wait.
    :param flush_seconds: write what waits at least this often.
    :param max_pending_rows: cap on rows held (waiting or being written), enforced at append.
    """

    def __init__(
        self,
        folder: str,
        model_name: str,
        id_column: str | None,
        numeric: list[str],
        categorical: list[str],
        *,
        source: str = "serving",
        client_request_ids: bool = False,
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
        self.client_request_ids = client_request_ids
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.max_pending_rows = max_pending_rows
        self.written_rows = 0
        self.dropped_rows = 0
        self.spilled_rows = 0
        self.files: list[str] = []
        self._block = self._new_block()
        self._sealed: list[Block] = []
        self._sealed_rows = 0
        # Day partitions built but not written (their write failed): retried first, never rebuilt,
        # so rows of a day already written are never written twice.
        self._unwritten: list[tuple[str, pa.Table]] = []
        self._writing_rows = 0  # rows a flush has taken and not yet written or requeued
        self._unreported: dict[str, int] = {}  # rows dropped since the last report line, by reason
        self._reported_at = -float("inf")
        self._closing = False
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sequence = 0
        host = layout.safe_segment(socket.gethostname())
        self._name_suffix = f"{layout.safe_segment(source)}-{host}-{os.getpid()}"
        self._thread: threading.Thread | None = None

    def _new_block(self, rows: int = 0) -> Block:
        return Block(max(rows, min(self.flush_rows, BLOCK_ROWS)), self.numeric, self.categorical)

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
        probabilities: np.ndarray | None = None,
        classes: tuple[str, ...] | None = None,
        client_request_id: str | None = None,
    ) -> None:
        """Queue the predictions of one request: a few slice copies into the open block.

        ``probabilities`` (rows x classes, with the ``classes`` labels as text) are given for
        models of more than two classes and logged as the ``probabilities`` map column.
        """
        rows = len(predictions)
        when = time.time() if logged_at is None else logged_at
        with self._lock:
            if self._closing:  # uvicorn drains requests before shutdown; anything later is counted
                self._drop(rows, f"the log was closed (request {request_id})", report=True)  # no later line
                return
            if self.pending_rows + self._writing_rows + rows > self.max_pending_rows:
                self._drop(rows, f"over {self.max_pending_rows} rows held while the store does not take them")
                return
            block = self._block
            if block.used + rows > block.capacity:
                if block.used:
                    self._seal(block)
                block = self._block = self._new_block(rows)
            block.append(request_id, when, model_version, features, predictions, scores, ids, probabilities, classes,
                         client_request_id)  # fmt: skip
            if block.used >= block.capacity:
                self._seal(block)
                self._block = self._new_block()
            full = self.pending_rows >= self.flush_rows
        if full:
            self._wake.set()

    @property
    def pending_rows(self) -> int:
        return self._block.used + self._sealed_rows + sum(t.num_rows for _, t in self._unwritten)

    def _drop(self, rows: int, reason: str, *, report: bool = False) -> None:
        """Count ``rows`` not logged and report them (under ``_lock``): the first at once,
        then one line per ``DROP_REPORT_SECONDS`` (or now, if ``report``)."""
        self.dropped_rows += rows
        self._unreported[reason] = self._unreported.get(reason, 0) + rows
        if report or time.monotonic() - self._reported_at >= DROP_REPORT_SECONDS:
            self._report_drops()

    def _report_drops(self) -> None:
        if self._unreported:
            what = "; ".join(f"{n} rows: {reason}" for reason, n in self._unreported.items())
            logger.error("prediction log: rows not logged since the last report: %s (%d in all)", what,
                         self.dropped_rows)  # fmt: skip
        self._unreported, self._reported_at = {}, time.monotonic()

    def _seal(self, block: Block) -> None:
        """Queue ``block`` for writing (under ``_lock``)."""
        self._sealed.append(block)
        self._sealed_rows += block.used

    # -- the background writer --------------------------------------------------------

    def start(self) -> PredictionLogger:
        """Start the thread that flushes by size and by time."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            if failures:
                # The store is failing: back off (1 s, 2 s, ... 60 s) and ignore "block full"
                # wake-ups meanwhile, instead of rebuilding the pending rows in a tight loop.
                self._stop.wait(min(60.0, 2.0 ** (failures - 1)))
            else:
                self._wake.wait(self.flush_seconds)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.flush()
                failures = 0
            except Exception as exc:  # kept and retried by flush(); never kill the writer thread
                failures += 1
                logger.error("prediction log write failed (%d in a row; %d rows kept): %s", failures,
                             self.pending_rows, exc)  # fmt: skip

    def close(self, deadline_seconds: float = CLOSE_DEADLINE_SECONDS, spill_dir: str | None = None) -> None:
        """Stop the writer and write everything still buffered (graceful shutdown).

        The store gets until ``deadline_seconds`` (retries 1 s, 2 s, 4 s ... apart); what
        it has not taken by then is written to ``spill_dir`` (default: a folder in the
        system's temp dir) and the error says where, so a store outage during a restart
        loses no prediction (``spilled_rows``); only if that fails too are the rows
        counted in ``dropped_rows``. Keep the deadline under the process's grace period.
        Its first line says how many rows are at stake, so that even a process killed before
        the end leaves a record of them; every row dropped is reported before it returns.
        """
        deadline = time.monotonic() + deadline_seconds
        with self._lock:
            self._closing = True
            held = self.pending_rows + self._writing_rows
        logger.info("prediction log: closing with %d rows to write (deadline %.0f s)", held, deadline_seconds)
        try:
            self._close(deadline, spill_dir)
        finally:
            with self._lock:
                self._report_drops()

    def _close(self, deadline: float, spill_dir: str | None) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=max(0.0, deadline - time.monotonic()))
            self._thread = None
        attempt = 0
        while True:
            try:
                self.flush()
                return
            except Exception as exc:
                attempt += 1
                logger.error("prediction log: final write failed (attempt %d): %s", attempt, exc)
            pause = min(2.0 ** min(attempt - 1, 6), deadline - time.monotonic())
            if pause <= 0:
                break
            time.sleep(pause)
        self._spill(spill_dir or os.path.join(tempfile.gettempdir(), "airflow-mlops-prediction-log-spill"))

    def _spill(self, spill: str) -> None:
        with self._write_lock, self._lock:
            if self._block.used:
                self._seal(self._block)
                self._block = self._new_block()
            parts = self._unwritten + self._parts(self._sealed)
            self._unwritten, self._sealed, self._sealed_rows = [], [], 0
        spilled = []
        for day, table in parts:
            try:
                spilled.append(self._write(day, table, folder=spill))
                self.spilled_rows += table.num_rows
            except Exception as exc:
                with self._lock:
                    self._drop(table.num_rows, f"neither {self.folder} nor {spill} took them ({exc})", report=True)
        if spilled:
            logger.error("prediction log: the store at %s failed; %d rows written to %s instead: move them there: %s",
                         self.folder, self.spilled_rows, spill, spilled)  # fmt: skip

    def flush(self) -> list[str]:
        """Write every buffered row, one file per date partition; return the new URIs."""
        with self._write_lock:
            with self._lock:
                if self._block.used:
                    self._seal(self._block)
                    self._block = self._new_block()
                blocks, self._sealed, self._sealed_rows = self._sealed, [], 0
                parts, self._unwritten = self._unwritten, []
                self._writing_rows = sum(b.used for b in blocks) + sum(t.num_rows for _, t in parts)
            try:
                try:
                    parts = parts + self._parts(blocks)
                except Exception as exc:  # rows that cannot become a table are lost: say so
                    with self._lock:
                        self._drop(sum(b.used for b in blocks), f"they could not be made a table ({exc})", report=True)
                    raise
                written: list[str] = []
                for index, (day, table) in enumerate(parts):
                    try:
                        written.append(self._write(day, table))
                    except Exception:
                        self._requeue(parts[index:])  # only what is not written yet
                        raise
                    with self._lock:
                        self._writing_rows -= table.num_rows
                return written
            finally:
                with self._lock:
                    self._writing_rows = 0

    def _requeue(self, parts: list[tuple[str, pa.Table]]) -> None:
        """Keep day partitions whose write failed, oldest first, within ``max_pending_rows``."""
        with self._lock:
            self._unwritten = parts + self._unwritten
            self._writing_rows = 0
            excess = self.pending_rows - self.max_pending_rows
            while excess > 0 and self._unwritten:  # drop the oldest rows, exactly the excess
                day, oldest = self._unwritten[0]
                dropped = min(excess, oldest.num_rows)
                if dropped == oldest.num_rows:
                    self._unwritten.pop(0)
                else:
                    self._unwritten[0] = (day, oldest.slice(dropped))
                excess -= dropped
                self._drop(dropped, f"the oldest, over {self.max_pending_rows} rows held after a failed write")

    def _parts(self, blocks: list[Block]) -> list[tuple[str, pa.Table]]:
        """The blocks' rows as one table per UTC day (the date partition)."""
        if not blocks:
            return []
        table = pa.concat_tables([self.table(b) for b in blocks], promote_options="permissive")
        days = np.concatenate([b.logged_at() // 86_400 for b in blocks]).astype(np.int64)
        unique = np.unique(days)
        return [
            (
                dt.datetime.fromtimestamp(int(day) * 86_400, dt.UTC).strftime("%Y-%m-%d"),
                table if len(unique) == 1 else table.filter(pa.array(days == day)),
            )
            for day in unique
        ]

    def _write(self, day: str, table: pa.Table, folder: str | None = None) -> str:
        buffer = io.BytesIO()
        # lz4, dictionaries for text only: the cheapest encoding measured here (3 ms per 10k rows).
        text = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        pq.write_table(table, buffer, compression="lz4", use_dictionary=text)
        self._sequence += 1
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"part-{stamp}-{self._name_suffix}-{self._sequence:06d}.parquet"
        uri = storage.write_bytes(buffer.getvalue(), layout.join(folder or self.folder, f"date={day}", name))
        if folder is None:
            self.written_rows += table.num_rows
            self.files.append(uri)
        return uri

    def table(self, block: Block) -> pa.Table:
        """The filled part of ``block`` as one Arrow table in the log schema."""
        import pyarrow.compute as pc

        n = block.used
        counts = np.asarray(block.counts, dtype=np.int64)

        def repeated(values: list[str]) -> pa.Array:
            return repeated_column(values, counts)

        def split(segments: list[str]) -> pa.Array:
            # large_string: the joined text of a big block may pass 2 GiB of UTF-8 bytes.
            return pc.split_pattern(pa.array([SEPARATOR.join(segments)], type=pa.large_string()), SEPARATOR).flatten()

        columns: dict[str, Any] = {"request_id": repeated(block.request_ids)}
        if self.client_request_ids:
            given = repeated(block.client_ids)
            columns["client_request_id"] = pc.if_else(pc.equal(given, ""), pa.scalar(None, type=pa.string()), given)
        columns |= {
            "row": pa.array(np.arange(n, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)),
            "logged_at": pa.array((block.logged_at() * 1e6).astype(np.int64), type=pa.timestamp("us", tz="UTC")),
            "model_name": constant_column(self.model_name, n),
            "model_version": repeated(block.versions),
            "source_uri": constant_column(self.source, n),
        }
        if self.id_column is not None:
            ids = split(block.ids)
            columns[self.id_column] = pc.if_else(pc.equal(ids, ""), pa.scalar(None, type=pa.string()), ids)
        for name in self.numeric:
            columns[name] = pa.array(block.numbers[name][:n])
        for name in self.categorical:
            columns[name] = split(block.text[name])
        if block.predictions is not None:
            columns["prediction"] = pa.array(block.predictions[:n])
        if block.scores is not None:
            columns["score"] = pa.array(block.scores[:n])
        if block.probabilities:
            columns["probabilities"] = block.probability_map()
        return pa.table(columns)
