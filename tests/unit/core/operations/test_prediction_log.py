"""The buffered prediction log: size and time flushes, failed writes kept, day partitions."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from airflow_mlops.core.io import storage
from airflow_mlops.core.operations.prediction_log import PredictionLogger

pytestmark = pytest.mark.unit


def _logger(folder, **kwargs) -> PredictionLogger:
    return PredictionLogger(str(folder), "m", "customer_id", ["x"], ["c"], **kwargs)


def _append(log: PredictionLogger, rows: int, request_id: str, at: float | None = None, version: str = "1") -> None:
    log.append(
        request_id,
        version,
        {"x": np.arange(rows, dtype=np.float64), "c": np.array(["a"] * rows, dtype=object)},
        np.ones(rows, dtype=np.int64),
        np.full(rows, 0.25),
        ids=[f"id{i}" for i in range(rows)],
        logged_at=at,
    )


def _read(uris):
    return [pq.read_table(storage.local_path(u)).to_pandas() for u in uris]


def test_blocks_fill_up_a_large_request_gets_its_own_and_a_flush_writes_them_in_order(tmp_path):
    log = _logger(tmp_path, flush_rows=10)
    for index in range(4):
        _append(log, 3, f"r{index}")  # 9 rows fit in the first block; the 4th request opens another
    _append(log, 25, "big")  # bigger than a block: written whole, in order
    uris = log.flush()
    (frame,) = _read(uris)  # three blocks (9, 3 and 25 rows), one file
    assert frame["request_id"].tolist() == [f"r{i}" for i in range(4) for _ in range(3)] + ["big"] * 25
    big = frame[frame["request_id"] == "big"]
    assert big["row"].tolist() == list(range(25)) and big["x"].tolist() == list(range(25))
    assert log.written_rows == 37 and log.pending_rows == 0 and log.flush() == []


def test_the_writer_thread_flushes_by_size_and_by_time(tmp_path):
    log = _logger(tmp_path / "size", flush_rows=5, flush_seconds=3600).start()
    try:
        _append(log, 5, "full")  # fills a block: wakes the writer at once
        deadline = time.monotonic() + 10
        while not log.files and time.monotonic() < deadline:
            time.sleep(0.01)
        assert log.written_rows == 5
    finally:
        log.close()
    timed = _logger(tmp_path / "time", flush_rows=1000, flush_seconds=0.1).start()
    try:
        _append(timed, 2, "small")
        deadline = time.monotonic() + 10
        while not timed.files and time.monotonic() < deadline:
            time.sleep(0.01)
        assert timed.written_rows == 2
    finally:
        timed.close()


def test_a_failed_write_keeps_the_rows_for_the_next_flush(tmp_path, monkeypatch):
    log = _logger(tmp_path, flush_rows=4)
    _append(log, 3, "a")
    _append(log, 3, "b")
    real = storage.write_bytes
    monkeypatch.setattr(storage, "write_bytes", lambda data, uri: (_ for _ in ()).throw(OSError("store down")))
    with pytest.raises(OSError, match="store down"):
        log.flush()
    assert log.pending_rows == 6 and log.written_rows == 0
    monkeypatch.setattr(storage, "write_bytes", real)
    (frame,) = _read(log.flush())
    assert frame["request_id"].tolist() == ["a"] * 3 + ["b"] * 3 and log.written_rows == 6


def test_rows_over_the_pending_cap_are_dropped_and_counted(tmp_path, monkeypatch):
    log = _logger(tmp_path, flush_rows=4, max_pending_rows=5)
    monkeypatch.setattr(storage, "write_bytes", lambda data, uri: (_ for _ in ()).throw(OSError("down")))
    for name in "abc":
        _append(log, 3, name)
    assert log.dropped_rows == 6 and log.pending_rows == 3  # the cap holds at append: b and c are not kept
    with pytest.raises(OSError):
        log.flush()
    assert log.dropped_rows == 6 and log.pending_rows == 3  # the failed write keeps what it had
    monkeypatch.undo()
    (frame,) = _read(log.flush())
    assert frame["request_id"].tolist() == ["a"] * 3


def test_rows_are_partitioned_by_the_day_they_were_predicted(tmp_path):
    log = _logger(tmp_path, flush_rows=100)
    midnight = dt.datetime(2026, 3, 2, tzinfo=dt.UTC).timestamp()
    _append(log, 2, "late", at=midnight - 1)
    _append(log, 3, "early", at=midnight + 1, version="2")
    uris = log.flush()
    assert ["date=2026-03-01" in uris[0], "date=2026-03-02" in uris[1]] == [True, True]
    before, after = _read(uris)
    assert before["request_id"].tolist() == ["late"] * 2 and after["model_version"].tolist() == ["2"] * 3
    assert str(after["logged_at"].dt.tz) == "UTC" and after["customer_id"].tolist() == ["id0", "id1", "id2"]


def test_text_values_survive_the_joined_storage_exactly(tmp_path):
    log = _logger(tmp_path, flush_rows=100)
    tricky = np.array(["", "a\x1fb", "ü ñ", "x" * 300], dtype=object)  # empty, the separator itself, unicode, long
    log.append("r1", "1", {"x": np.zeros(4), "c": tricky}, np.zeros(4, dtype=np.int64), None, ids=[7, None, "id-3", ""])
    log.append("r2", "1", {"x": np.ones(1), "c": np.array(["solo"], dtype=object)}, np.ones(1, dtype=np.int64), None)
    (frame,) = _read(log.flush())
    assert frame["c"].tolist() == ["", "a\ufffdb", "ü ñ", "x" * 300, "solo"]
    assert [None if v != v else v for v in frame["customer_id"].tolist()] == ["7", None, "id-3", None, None]
    assert frame["row"].tolist() == [0, 1, 2, 3, 0] and frame["request_id"].tolist() == ["r1"] * 4 + ["r2"]
    assert "score" not in frame.columns


def test_a_store_down_at_shutdown_spills_the_rows_locally_instead_of_losing_them(tmp_path, monkeypatch):
    log = _logger(tmp_path / "store", flush_rows=100)
    _append(log, 4, "last")
    real = storage.write_bytes

    def store_down(data, uri):
        if str(tmp_path / "store") in uri:
            raise OSError("store down")
        return real(data, uri)

    monkeypatch.setattr(storage, "write_bytes", store_down)
    log.close(deadline_seconds=1.5, spill_dir=str(tmp_path / "spill"))  # tries at 0 s and 1 s, then spills
    spilled = storage.list_files_recursive(str(tmp_path / "spill"), (".parquet",))
    assert len(spilled) == 1 and _read(spilled)[0]["request_id"].tolist() == ["last"] * 4
    assert log.dropped_rows == 0 and log.pending_rows == 0 and log.spilled_rows == 4 and log.written_rows == 0


def test_the_writer_backs_off_while_the_store_fails(tmp_path, monkeypatch):
    calls = []
    log = _logger(tmp_path, flush_rows=1, flush_seconds=0.01)

    def failing_flush():
        calls.append(time.monotonic())
        raise OSError("store down")

    monkeypatch.setattr(log, "flush", failing_flush)
    log.start()
    for index in range(200):  # every append fills a block and wakes the writer
        _append(log, 1, f"r{index}")
        time.sleep(0.005)
    log._stop.set()
    log._wake.set()
    log._thread.join()
    assert 1 <= len(calls) <= 3  # 1 s, then 2 s of back-off: not one retry per wake-up


def test_a_failed_second_day_is_retried_without_writing_the_first_day_again(tmp_path, monkeypatch):
    log = _logger(tmp_path, flush_rows=100)
    midnight = dt.datetime(2026, 3, 2, tzinfo=dt.UTC).timestamp()
    _append(log, 2, "late", at=midnight - 1)
    _append(log, 3, "early", at=midnight + 1)
    _append(log, 1, "clock-stepped-back", at=midnight - 0.5)  # out of order: still the first day
    real = storage.write_bytes

    def second_day_down(data, uri):
        if "date=2026-03-02" in uri:
            raise OSError("store down")
        return real(data, uri)

    monkeypatch.setattr(storage, "write_bytes", second_day_down)
    with pytest.raises(OSError):
        log.flush()
    monkeypatch.setattr(storage, "write_bytes", real)
    log.flush()
    frames = {u.split("date=")[1][:10]: f for u, f in zip(log.files, _read(log.files), strict=True)}
    assert sorted(frames["2026-03-01"]["request_id"]) == ["clock-stepped-back", "late", "late"]
    assert frames["2026-03-02"]["request_id"].tolist() == ["early"] * 3
    assert log.written_rows == 6


def test_rows_appended_after_close_are_counted_not_silently_lost(tmp_path):
    log = _logger(tmp_path, flush_rows=100)
    _append(log, 2, "in-time")
    log.close()
    _append(log, 3, "too-late")
    assert log.written_rows == 2 and log.dropped_rows == 3
