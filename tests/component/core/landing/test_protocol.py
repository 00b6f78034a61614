"""The producer protocol of a landing inbox: writes in progress, markers, settling, links, and a
lake copy that keeps what the claim fingerprinted."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import stat
import threading
import time

import pytest

from airflow_mlops.core.io import storage
from airflow_mlops.core.landing import inbox as landing
from airflow_mlops.core.landing import protocol as landing_protocol
from airflow_mlops.triggers.landing import LandingZoneTrigger
from tests.component.core.io.test_s3 import bucket, s3_server  # noqa: F401  (fixtures: moto S3 on 127.0.0.1)

pytestmark = pytest.mark.component

CSV = (".csv",)
HEADER = b"customer_id,tenure_months,churned\n"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    """The observations of these tests, on a clock the test moves."""
    fake = Clock()
    monkeypatch.setattr(landing_protocol, "OBSERVED", landing_protocol.Observations(clock=fake))
    return fake


@pytest.fixture
def zone(tmp_path):
    inbox, lake = tmp_path / "in", tmp_path / "lake" / "labeled"
    inbox.mkdir()
    return inbox, lake


def _rows(start: int, stop: int) -> bytes:
    return b"".join(f"c{i},{i % 72},{i % 2}\n".encode() for i in range(start, stop))


def _aged(path, seconds: float) -> None:
    os.utime(path, (time.time() - seconds, time.time() - seconds))


def _manifest(lake, claim_id: str) -> dict:
    return json.loads((lake.parent / "_claims" / lake.name / claim_id / "_manifest.json").read_text())


def _sha256(path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


# -- settling: two observations settle_seconds apart with the same size and mtime ---------------------


def test_a_file_appended_every_3_s_is_claimed_only_once_it_stopped_changing(zone, clock):
    """The incident: 115 of 344 rows were claimed 2 s after the last append of a file still growing."""
    inbox, lake = zone
    path = inbox / "batch.csv"
    path.write_bytes(HEADER + _rows(0, 115))
    _aged(path, 2.5)  # the old rule (unmodified for min_age_seconds=2) would claim it now
    rules = {"min_age_seconds": 2.0, "settle_seconds": 5.0}
    assert landing.claim(str(inbox), str(lake), CSV, **rules) is None  # first look: settling starts
    for start, stop in ((115, 230), (230, 344)):  # the producer appends every 3 s
        clock.now += 3.0
        with path.open("ab") as handle:
            handle.write(_rows(start, stop))
        _aged(path, 2.5)
        assert landing.claim(str(inbox), str(lake), CSV, **rules) is None  # changed since the last look
    clock.now += 4.9
    assert landing.claim(str(inbox), str(lake), CSV, **rules) is None  # unchanged, but not for 5 s yet
    clock.now += 0.2
    record = landing.claim(str(inbox), str(lake), CSV, **rules)
    assert record is not None and len(record.claimed) == 1
    claimed = storage.local_path(record.claimed[0])
    with open(claimed, "rb") as handle:
        assert handle.read().count(b"\n") == 345  # the header and all 344 rows


def test_the_trigger_of_a_pipeline_waits_for_a_file_being_written_to_settle(zone):
    """Real time: a writer holding the file open appends every 0.3 s; the trigger claims it whole."""
    inbox, lake = zone
    path = inbox / "batch.csv"
    done = threading.Event()

    def producer() -> None:
        with path.open("ab", buffering=0) as handle:
            handle.write(HEADER)
            for start in range(0, 100, 10):
                handle.write(_rows(start, start + 10))
                time.sleep(0.3)
        done.set()

    writer = threading.Thread(target=producer)
    writer.start()
    trigger = LandingZoneTrigger(
        inbox=str(inbox), destination=str(lake), poll_interval=0.05, min_age_seconds=0.2, settle_seconds=1.0
    )
    event = asyncio.run(asyncio.wait_for(_first(trigger), 15))
    writer.join()
    assert done.is_set()  # nothing was claimed while the producer wrote
    (claimed,) = event.payload["claimed"]
    lake_file = storage.local_path(claimed)
    with open(lake_file, "rb") as handle:
        assert handle.read().count(b"\n") == 101
    (planned,) = _manifest(lake, event.payload["claim_id"])["files"]
    assert planned["fingerprint"] == _sha256(type(path)(lake_file))


async def _first(trigger):
    async for event in trigger.run():
        return event
    return None


def test_the_pipelines_watchers_apply_the_specs_landing_rules(mlops_home):
    from airflow_mlops.factories.assets import pipeline_assets
    from airflow_mlops.spec import LandingSpec

    rules = LandingSpec(settle_seconds=12, require_marker=".done")
    assets = pipeline_assets("churn", landing_rules=rules)
    for asset in (assets.landing_training, assets.landing_scoring):
        _, kwargs = asset.watchers[0].trigger.serialize()
        assert kwargs["settle_seconds"] == 12 and kwargs["require_marker"] == ".done"
    _, default = pipeline_assets("churn", landing_rules=LandingSpec()).landing_training.watchers[0].trigger.serialize()
    assert default["settle_seconds"] == 5.0 and default["require_marker"] is None  # safer than one look


# -- names of writes in progress -------------------------------------------------------------------------


def test_names_of_writes_in_progress_are_never_claimed(zone):
    inbox, lake = zone
    names = [".a.csv", "_b.csv", "~$c.csv", "d.csv.tmp", "e.csv.part", "f.csv.crdownload", "g.csv~", "h.CSV.PART"]
    for name in [*names, "ok.csv"]:
        (inbox / name).write_bytes(name.encode())
    record = landing.claim(str(inbox), str(lake), (*CSV, ".CSV.PART"))
    assert record is not None and [u.rsplit("-", 1)[-1] for u in record.claimed] == ["ok.csv"]
    assert sorted(p.name for p in inbox.iterdir()) == sorted(names)
    assert all(landing_protocol.is_in_progress_name(n) for n in names)
    assert not landing_protocol.is_in_progress_name("2026-12-01-batch.tmpdata.csv")


# -- markers: <name>.done beside the file, written after it ------------------------------------------------


def test_with_a_marker_required_a_file_is_claimed_only_once_its_marker_was_written_after_it(zone, caplog):
    inbox, lake = zone
    rules = {"require_marker": ".done"}
    data, marker = inbox / "a.csv", inbox / "a.csv.done"
    data.write_bytes(HEADER + _rows(0, 3))
    (inbox / "orphan.csv.done").write_bytes(b"")  # a marker without its file claims nothing
    assert landing.claim(str(inbox), str(lake), CSV, **rules) is None
    assert landing.settled_files(str(inbox), CSV, **rules) == []
    marker.write_bytes(b"")
    _aged(marker, 60)  # a marker older than its file belongs to an earlier version of it
    assert landing.claim(str(inbox), str(lake), CSV, **rules) is None
    marker.touch()
    assert landing.settled_files(str(inbox), CSV, **rules) == [str(data)]
    record = landing.claim(str(inbox), str(lake), CSV, **rules)
    assert record is not None and len(record.claimed) == 1
    assert sorted(p.name for p in inbox.iterdir()) == ["orphan.csv.done"]  # the marker went with its file
    data.write_bytes(HEADER + _rows(3, 6))  # the same name again: it needs a marker of its own
    assert landing.claim(str(inbox), str(lake), CSV, **rules) is None


def test_s3_with_a_marker_required_an_object_is_claimed_once_its_marker_exists(bucket):  # noqa: F811
    inbox, lake = f"s3://{bucket}/landing/churn/training", f"s3://{bucket}/artifacts/churn/lake/labeled"
    storage.write_bytes(HEADER + _rows(0, 3), f"{inbox}/a.csv")
    assert landing.claim(inbox, lake, CSV, require_marker=".done") is None
    storage.write_bytes(b"", f"{inbox}/a.csv.done")
    record = landing.claim(inbox, lake, CSV, require_marker=".done")
    assert record is not None and len(record.claimed) == 1
    assert storage.list_files(inbox, ("",)) == []  # the object and its marker are gone from the inbox


def test_a_marker_suffix_is_checked_in_the_spec():
    from airflow_mlops.spec import LandingSpec, parse_spec

    assert LandingSpec(require_marker=".ready").require_marker == ".ready"
    for bad in ("done", "_SUCCESS", ".csv", ".do ne", "../x"):
        with pytest.raises(ValueError, match="marker"):
            LandingSpec(require_marker=bad)
    spec = parse_spec(
        "name: churn\ndata: {label: y, features: {numeric: [x]}, landing: {settle_seconds: 30}}\n"
        "model: {estimator: logistic_regression}\n"
    )
    assert spec.data.landing.settle_seconds == 30 and spec.data.landing.require_marker is None


# -- the lake copy keeps what the claim fingerprinted -------------------------------------------------------


def test_a_producer_still_holding_the_file_open_cannot_change_the_lake_copy(zone):
    inbox, lake = zone
    path = inbox / "batch.csv"
    handle = path.open("ab", buffering=0)
    try:
        handle.write(HEADER + _rows(0, 115))
        record = landing.claim(str(inbox), str(lake), CSV)
        assert record is not None
        handle.write(_rows(115, 344))  # the producer goes on writing through its open file
    finally:
        handle.close()
    lake_file = type(path)(storage.local_path(record.claimed[0]))
    (planned,) = _manifest(lake, record.claim_id)["files"]
    assert planned["fingerprint"] == _sha256(lake_file)  # what is kept is what was fingerprinted
    assert lake_file.read_bytes().count(b"\n") == 116
    assert not stat.S_IMODE(lake_file.stat().st_mode) & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert not any(p.name.startswith(".") for p in lake.iterdir())  # no copy left half-way


def test_a_file_that_changes_while_it_is_copied_goes_back_to_the_inbox(zone, monkeypatch, caplog):
    inbox, lake = zone
    path = inbox / "batch.csv"
    path.write_bytes(HEADER + _rows(0, 10))
    real_fsync = os.fsync

    def producer_appends(fd):  # during the copy (its fsync), the producer writes to the staged file
        for staged in inbox.glob(".claiming-*"):
            with staged.open("ab") as handle:
                handle.write(_rows(10, 20))
        real_fsync(fd)

    with monkeypatch.context() as patch, caplog.at_level(logging.WARNING):
        patch.setattr(os, "fsync", producer_appends)
        assert landing.claim(str(inbox), str(lake), CSV) is None
    assert "changed while it was claimed" in caplog.text
    assert [p.name for p in inbox.iterdir()] == ["batch.csv"]  # back under its name, with every byte
    assert path.read_bytes().count(b"\n") == 21
    assert not lake.exists() or not [p for p in lake.iterdir()]  # nothing of it in the lake, no hidden copy
    record = landing.claim(str(inbox), str(lake), CSV)  # unchanged now: claimed, fingerprint released before
    assert record is not None and type(path)(storage.local_path(record.claimed[0])).read_bytes().count(b"\n") == 21


def test_s3_a_version_overwritten_after_the_listing_is_not_claimed_as_listed(bucket, monkeypatch):  # noqa: F811
    inbox, lake = f"s3://{bucket}/landing/churn/training", f"s3://{bucket}/artifacts/churn/lake/labeled"
    storage.write_bytes(HEADER + _rows(0, 3), f"{inbox}/a.csv")
    listed = landing._listed(inbox, CSV)
    storage.write_bytes(HEADER + _rows(0, 30), f"{inbox}/a.csv")  # overwritten since the listing
    with monkeypatch.context() as patch:
        patch.setattr(landing, "_listed", lambda *args: listed)
        assert landing.claim(inbox, lake, CSV) is None  # the copy is conditional on the listed ETag
    assert storage.list_files(lake, CSV) == []
    record = landing.claim(inbox, lake, CSV)  # the new version, listed afresh
    assert record is not None and storage.read_bytes(record.claimed[0]).count(b"\n") == 31


def test_s3_a_copy_whose_size_is_not_the_listed_one_is_not_kept(bucket, monkeypatch):  # noqa: F811
    inbox, lake = f"s3://{bucket}/landing/churn/training", f"s3://{bucket}/artifacts/churn/lake/labeled"
    storage.write_bytes(HEADER, f"{inbox}/a.csv")
    listed = [(uri, {**version, "size": version["size"] + 1}) for uri, version in landing._listed(inbox, CSV)]
    with monkeypatch.context() as patch:
        patch.setattr(landing, "_listed", lambda *args: listed)
        with pytest.raises(RuntimeError, match="bytes, the listing"):
            landing.claim(inbox, lake, CSV)
    assert storage.list_files(lake, CSV) == [] and storage.list_files(inbox, CSV) == [f"{inbox}/a.csv"]
    assert landing.claim(inbox, lake, CSV) is not None  # the lock was released: claimed by the next poll


# -- symbolic links and files outside the inbox ---------------------------------------------------------------


def test_symlinks_in_the_inbox_are_refused_named_once_and_never_read(zone, tmp_path, caplog):
    inbox, lake = zone
    secret = tmp_path / "outside" / "passwd"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0:root-secret-line:/root:/bin/bash\n")
    (inbox / "users.csv").symlink_to(secret)  # out of the inbox
    (inbox / "real.csv").write_bytes(HEADER + _rows(0, 3))
    (inbox / "alias.csv").symlink_to(inbox / "real.csv")  # even to a file of the inbox
    with caplog.at_level(logging.WARNING):
        record = landing.claim(str(inbox), str(lake), CSV)
        assert record is not None and [u.rsplit("-", 1)[-1] for u in record.claimed] == ["real.csv"]
        assert landing.claim(str(inbox), str(lake), CSV) is None
        assert landing.settled_files(str(inbox), CSV) == []
    refusals = [r.getMessage() for r in caplog.records if "refusing" in r.getMessage()]
    assert len(refusals) == 2 and all("symbolic link" in m for m in refusals)  # once each, over three looks
    assert "root-secret-line" not in caplog.text
    assert sorted(p.name for p in inbox.iterdir()) == ["alias.csv", "users.csv"]  # left in place
    assert (inbox / "users.csv").is_symlink() and secret.read_text().startswith("root:")
    assert [p.name.rsplit("-", 1)[-1] for p in lake.iterdir()] == ["real.csv"]


def test_an_inbox_reached_through_a_link_still_claims_its_own_files(tmp_path):
    real, lake = tmp_path / "real-inbox", tmp_path / "lake" / "labeled"
    real.mkdir()
    (tmp_path / "inbox").symlink_to(real, target_is_directory=True)
    (real / "a.csv").write_bytes(HEADER)
    record = landing.claim(str(tmp_path / "inbox"), str(lake), CSV)
    assert record is not None and len(record.claimed) == 1
