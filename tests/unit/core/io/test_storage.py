"""Storage: atomic writes, listing that ignores partial files, claims that move files once."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from airflow_mlops.core.io import storage, tables
from airflow_mlops.core.landing import inbox as landing

pytestmark = pytest.mark.unit


def test_write_is_atomic_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "a" / "report.json"
    storage.write_json({"x": 1}, str(target))
    assert storage.read_json(str(target)) == {"x": 1}
    assert os.listdir(target.parent) == ["report.json"]


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "data.json"
    storage.write_json({"v": 1}, str(target))

    def broken_fsync(_fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        storage.write_json({"v": 2}, str(target))
    assert storage.read_json(str(target)) == {"v": 1}
    assert os.listdir(tmp_path) == ["data.json"]


def test_list_files_skips_hidden_temporary_and_foreign_files(tmp_path):
    for name in ("b.parquet", "a.csv", ".tmp-x.parquet", "_SUCCESS", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert storage.list_files(str(tmp_path)) == [f"{tmp_path}/a.csv", f"{tmp_path}/b.parquet"]
    assert storage.list_files(str(tmp_path / "missing")) == []


def test_claim_moves_each_file_exactly_once(tmp_path):
    inbox, lake = tmp_path / "inbox", tmp_path / "lake"
    inbox.mkdir()
    for name in ("one.parquet", "two.parquet"):
        (inbox / name).write_bytes(name.encode())  # content of its own: equal content is a duplicate
    first = landing.claim_new_files(str(inbox), str(lake), (".parquet",))
    second = landing.claim_new_files(str(inbox), str(lake), (".parquet",))
    assert [uri.rsplit("-", 1)[-1] for uri in first] == ["one.parquet", "two.parquet"]
    assert all(uri.startswith(f"{lake}/") for uri in first)
    assert second == []
    assert sorted(os.listdir(lake)) == sorted(uri.rsplit("/", 1)[-1] for uri in first)
    assert os.listdir(inbox) == []


def test_a_repeated_upstream_file_name_never_overwrites_an_earlier_batch(tmp_path):
    inbox, lake = tmp_path / "inbox", tmp_path / "lake"
    inbox.mkdir()
    for content in (b"monday", b"tuesday"):
        (inbox / "export.parquet").write_bytes(content)
        landing.claim_new_files(str(inbox), str(lake), (".parquet",))
    contents = [(lake / name).read_bytes() for name in sorted(os.listdir(lake))]
    assert contents == [b"monday", b"tuesday"]  # names sort in arrival order


def test_files_still_being_written_are_left_for_the_next_poll(tmp_path):
    inbox, lake = tmp_path / "inbox", tmp_path / "lake"
    inbox.mkdir()
    (inbox / "fresh.parquet").write_bytes(b"x")
    assert landing.claim_new_files(str(inbox), str(lake), (".parquet",), min_age_seconds=60) == []
    old = inbox / "fresh.parquet"
    os.utime(old, (old.stat().st_atime - 120, old.stat().st_mtime - 120))
    assert len(landing.claim_new_files(str(inbox), str(lake), (".parquet",), min_age_seconds=60)) == 1


def test_move_refuses_to_overwrite(tmp_path):
    (tmp_path / "a").write_bytes(b"a")
    (tmp_path / "b").write_bytes(b"b")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        storage.move(str(tmp_path / "a"), str(tmp_path / "b"))
    assert (tmp_path / "b").read_bytes() == b"b"


def test_parquet_round_trip_and_fingerprint_tracks_content(tmp_path):
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None]})
    uri = tables.write_parquet(frame, str(tmp_path / "t.parquet"))
    back = tables.read_table(uri)
    assert back["a"].tolist() == [1, 2, 3]
    assert tables.fingerprint_frame(frame) == tables.fingerprint_frame(frame.copy())
    changed = frame.copy()
    changed.loc[0, "a"] = 9
    assert tables.fingerprint_frame(changed) != tables.fingerprint_frame(frame)


def test_a_table_with_nested_values_has_a_fingerprint_that_follows_them():
    import numpy as np
    import pandas as pd

    # A multiclass prediction log: class probabilities per row, as lists of pairs, maps or arrays.
    frame = pd.DataFrame({"row": [0, 1], "probabilities": [[("a", 0.7), ("b", 0.3)], [("a", 0.1), ("b", 0.9)]]})
    same = frame.assign(probabilities=[[("a", 0.7), ("b", 0.3)], [("a", 0.1), ("b", 0.9)]])
    assert tables.fingerprint_frame(frame) == tables.fingerprint_frame(same)
    changed = frame.assign(probabilities=[[("a", 0.7), ("b", 0.3)], [("a", 0.2), ("b", 0.8)]])
    assert tables.fingerprint_frame(changed) != tables.fingerprint_frame(frame)
    maps = pd.DataFrame({"p": [{"a": 0.5}, None, np.array([1.0, 2.0])]})
    assert len(tables.fingerprint_frame(maps)) == 16


def test_move_file_renames_on_one_filesystem_and_copies_across(tmp_path, monkeypatch):
    import errno

    source = tmp_path / "local.bin"
    source.write_bytes(b"dataset")
    inode = source.stat().st_ino
    target = tmp_path / "out" / "dataset.bin"
    assert storage.move_file(str(source), str(target)) == str(target)
    assert target.read_bytes() == b"dataset" and target.stat().st_ino == inode and not source.exists()

    # Another filesystem: os.replace refuses with EXDEV, the file is copied then removed.
    source.write_bytes(b"second")
    real_replace = os.replace

    def cross_device(src, dst):
        if src == str(source):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", cross_device)
    storage.move_file(str(source), str(target))
    assert target.read_bytes() == b"second" and not source.exists()
    assert [p.name for p in target.parent.iterdir()] == ["dataset.bin"]  # no temporary file left behind
