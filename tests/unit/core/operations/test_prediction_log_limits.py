"""The prediction log keeps its promises: ``max_pending_rows`` holds at every append (a write
under way included), and every row not logged is counted and reported."""

from __future__ import annotations

import logging
import re
import threading
import time

import numpy as np
import pytest

from airflow_mlops.core.io import storage
from airflow_mlops.core.operations.prediction_log import PredictionLogger
from airflow_mlops.core.operations.prediction_log import writer as prediction_log

pytestmark = pytest.mark.unit


def _logger(folder, **kwargs) -> PredictionLogger:
    return PredictionLogger(str(folder), "m", "customer_id", ["x"], ["c"], **kwargs)


def _append(log: PredictionLogger, rows: int, request_id: str) -> None:
    log.append(
        request_id,
        "1",
        {"x": np.arange(rows, dtype=np.float64), "c": np.array(["a"] * rows, dtype=object)},
        np.ones(rows, dtype=np.int64),
        np.full(rows, 0.25),
        ids=[f"id{i}" for i in range(rows)],
    )


def _reported(caplog) -> int:
    """Rows the log lines say were not logged (the sum over every report line)."""
    total = 0
    for record in caplog.records:
        if "rows not logged since the last report" in record.getMessage():
            total += sum(int(n) for n in re.findall(r"(\d+) rows: ", record.getMessage()))
    return total


def test_the_cap_holds_at_append_while_the_store_is_down(tmp_path, monkeypatch, caplog):
    log = _logger(tmp_path, flush_rows=1_000_000, max_pending_rows=1_000)
    monkeypatch.setattr(storage, "write_bytes", lambda data, uri: (_ for _ in ()).throw(OSError("store down")))
    with caplog.at_level(logging.ERROR):
        for index in range(50):
            _append(log, 100, f"r{index}")  # 5,000 rows offered, at most 1,000 held
    assert log.pending_rows == 1_000 and log.dropped_rows == 4_000
    assert 1 <= len([r for r in caplog.records if "rows not logged" in r.getMessage()]) <= 2  # not one per request
    monkeypatch.undo()  # the store is back: the rows held are written at close
    log.close(deadline_seconds=5)
    assert log.written_rows == 1_000 and _reported(caplog) == log.dropped_rows == 4_000


def test_rows_in_a_write_under_way_count_against_the_cap(tmp_path, monkeypatch):
    log = _logger(tmp_path, flush_rows=1_000_000, max_pending_rows=1_000)
    entered, release = threading.Event(), threading.Event()

    def slow_failing_write(data, uri):
        entered.set()
        release.wait(10)
        raise OSError("store down")

    monkeypatch.setattr(storage, "write_bytes", slow_failing_write)
    for index in range(8):
        _append(log, 100, f"early{index}")
    failures: list[Exception] = []

    def flush() -> None:
        try:
            log.flush()
        except OSError as exc:
            failures.append(exc)

    writer = threading.Thread(target=flush)
    writer.start()
    assert entered.wait(10)
    for index in range(10):  # 800 rows are in the write: room for 200 more, not for 1,000
        _append(log, 100, f"late{index}")
    assert log.pending_rows == 200 and log.dropped_rows == 800  # held while the write hangs: 1,000
    release.set()
    writer.join(10)
    assert log.pending_rows == 1_000 and log.dropped_rows == 800  # the failed write's rows are back
    assert [str(e) for e in failures] == ["store down"]


def test_rows_dropped_at_shutdown_are_reported_and_the_first_line_says_what_is_at_stake(tmp_path, monkeypatch, caplog):
    log = _logger(tmp_path, flush_rows=1_000_000)
    monkeypatch.setattr(storage, "write_bytes", lambda data, uri: (_ for _ in ()).throw(OSError("store down")))
    _append(log, 30, "r0")
    with caplog.at_level(logging.INFO):
        log.close(deadline_seconds=0, spill_dir=str(tmp_path / "spill"))  # the spill fails too: same store code
        _append(log, 5, "late")  # after close: no later line will come, so reported at once
    messages = [r.getMessage() for r in caplog.records]
    assert "prediction log: closing with 30 rows to write (deadline 0 s)" in messages
    assert log.dropped_rows == 35 and _reported(caplog) == 35


def test_report_lines_come_at_most_every_few_seconds_with_exact_counts(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(prediction_log, "DROP_REPORT_SECONDS", 0.05)
    log = _logger(tmp_path, flush_rows=1_000_000, max_pending_rows=10)
    with caplog.at_level(logging.ERROR):
        deadline = time.monotonic() + 0.3
        sent = 0
        while time.monotonic() < deadline:
            _append(log, 20, f"r{sent}")  # never fits: every row dropped
            sent += 1
        log.close(deadline_seconds=5)
    lines = [r for r in caplog.records if "rows not logged" in r.getMessage()]
    assert sent > 50 and 2 <= len(lines) <= 12
    assert _reported(caplog) == log.dropped_rows == 20 * sent
