"""Claims whose claimer died before delivering them: recovered by the next poll, delivered once,
never read by a window meanwhile, and shown in the logs and on the plugin page."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from airflow_mlops import layout
from airflow_mlops.core.data import stages as data_stages
from airflow_mlops.core.io import storage
from airflow_mlops.core.landing import delivery
from airflow_mlops.core.landing import inbox as landing
from airflow_mlops.operators.base import claimed_uris_from_events
from airflow_mlops.spec import parse_spec
from airflow_mlops.triggers.landing import LandingZoneTrigger
from tests.component.core.io.test_s3 import bucket, s3_server  # noqa: F401  (fixtures: moto S3 on 127.0.0.1)

pytestmark = pytest.mark.component

PARQUET = (".parquet",)
REPO = Path(__file__).resolve().parents[4]

# A claimer that SIGKILLs itself at one exact step of claiming: no clean-up, no record written after it.
KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from airflow_mlops.core.landing import inbox as landing
    from airflow_mlops.core.io import s3
    from airflow_mlops.core.io import storage
    inbox, lake, step, after = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    calls = []

    def dies(real):
        def call(*args, **kwargs):
            calls.append(args)
            if len(calls) > after:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        return call

    if step == "local-move":  # after the rename to .claiming-<id>-<name>, before the move to the lake
        storage.move = dies(storage.move)
    else:  # "s3-delete": after the copy to the lake, before the source is deleted and the claim recorded
        client = s3.client_for(inbox)
        client.delete_object = dies(client.delete_object)
    landing.claim(inbox, lake, (".parquet",))
    sys.exit("the claimer was not killed")
    """
)


def _kill_claimer_at(tmp_path, inbox: str, lake: str, step: str, after: int = 0) -> None:
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'plugins'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, str(script), inbox, lake, step, str(after)], env=env, timeout=120)
    assert done.returncode == -9, done  # SIGKILL


async def _first_event(trigger):
    async for event in trigger.run():
        return event
    return None


def _event(trigger, timeout=10.0):
    return asyncio.run(asyncio.wait_for(_first_event(trigger), timeout))


def _context(payload, run_id="run-1", pipeline="churn"):
    return {
        "dag": SimpleNamespace(dag_id="churn_training"),
        "run_id": run_id,
        "task": SimpleNamespace(task_id="ingest", load_spec=lambda: SimpleNamespace(name=pipeline)),
        "triggering_asset_events": {"asset": [SimpleNamespace(extra={"payload": payload})]},
    }


def _names(uris):
    return [uri.rsplit("-", 1)[-1] for uri in uris]


@pytest.fixture
def zone(mlops_home, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_MLOPS_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    inbox, lake = tmp_path / "in", Path(layout.lake_dir("churn", "labeled"))
    inbox.mkdir()
    return inbox, lake


def test_a_claimer_killed_after_the_rename_is_recovered_by_the_next_poll_and_delivered_once(zone, tmp_path):
    inbox, lake = zone
    for name in ("a.parquet", "b.parquet"):
        (inbox / name).write_bytes(name.encode())
    _kill_claimer_at(tmp_path, str(inbox), str(lake), "local-move")
    (staged,) = [n for n in os.listdir(inbox) if n.startswith(".claiming-")]  # invisible to every poll
    assert sorted(os.listdir(inbox)) == [staged, "b.parquet"] and delivery.open_claims(str(lake))

    trigger = LandingZoneTrigger(inbox=str(inbox), destination=str(lake), poll_interval=0.05, min_age_seconds=0)
    first = _event(trigger)  # the restarted trigger's first poll: no redelivery wait for a claim never delivered
    assert _names(first.payload["claimed"]) == ["a.parquet"] and first.payload["delivery"] == 1
    assert claimed_uris_from_events(_context(first.payload)) == first.payload["claimed"]
    second = _event(trigger)  # b was never taken by the dead claimer: a new claim of its own
    assert _names(second.payload["claimed"]) == ["b.parquet"]
    assert claimed_uris_from_events(_context(second.payload, run_id="run-2")) == second.payload["claimed"]
    with pytest.raises(TimeoutError):  # nothing more: each file delivered once
        _event(trigger, 0.5)
    assert os.listdir(inbox) == []
    assert sorted(p.read_bytes() for p in lake.iterdir()) == [b"a.parquet", b"b.parquet"]
    assert claimed_uris_from_events(_context(first.payload, run_id="run-3")) == []  # taken once


def test_s3_a_claimer_killed_after_the_copy_is_recovered_by_the_next_poll_and_delivered_once(
    bucket,  # noqa: F811
    monkeypatch,
    tmp_path,
):
    monkeypatch.setenv("AIRFLOW_MLOPS_ARTIFACT_ROOT", f"s3://{bucket}/artifacts")
    inbox, lake = f"s3://{bucket}/landing/churn/training", layout.lake_dir("churn", "labeled")
    storage.write_bytes(b"a", f"{inbox}/a.parquet")
    _kill_claimer_at(tmp_path, inbox, lake, "s3-delete")
    assert len(storage.list_files(lake)) == 1 and storage.list_files(inbox) == [f"{inbox}/a.parquet"]

    trigger = LandingZoneTrigger(inbox=inbox, destination=lake, poll_interval=0.05, min_age_seconds=0)
    event = _event(trigger, 20)
    assert _names(event.payload["claimed"]) == ["a.parquet"] and event.payload["delivery"] == 1
    assert claimed_uris_from_events(_context(event.payload)) == event.payload["claimed"]
    with pytest.raises(TimeoutError):
        _event(trigger, 1.0)
    assert storage.list_files(inbox) == [] and storage.list_files(lake) == event.payload["claimed"]
    assert storage.read_bytes(event.payload["claimed"][0]) == b"a"


SPEC = """
name: churn
data:
  id_column: customer_id
  label: churned
  window_batches: 4
  features: {numeric: [tenure_months]}
model: {estimator: logistic_regression}
"""


def test_a_window_never_reads_a_file_of_an_undelivered_claim(zone, tmp_path):
    inbox, lake = zone
    (inbox / "old.parquet").write_bytes(b"old")
    (history,) = landing.claim_new_files(str(inbox), str(lake), PARQUET)
    for name in ("a.parquet", "b.parquet"):
        (inbox / name).write_bytes(name.encode())
    _kill_claimer_at(tmp_path, str(inbox), str(lake), "local-move", after=1)  # a moved, b staged, no delivery
    assert len([n for n in os.listdir(lake) if not n.startswith(".")]) == 2  # b's copy is hidden (.copying-)
    spec = parse_spec(SPEC)
    assert data_stages.source_uris(spec) == [history]  # a calendar run meanwhile: not the claim's a
    recovered = delivery.redeliver_due(str(lake), 3600.0, 5)
    assert recovered is not None and _names(recovered.claimed) == ["a.parquet", "b.parquet"]
    assert data_stages.source_uris(spec) == [history, *recovered.claimed]  # delivered: part of the lake


def test_a_claim_failing_on_a_full_disk_gives_its_files_back_to_the_inbox(zone, monkeypatch):
    inbox, lake = zone
    for name in ("a.parquet", "b.parquet"):
        (inbox / name).write_bytes(name.encode())

    def disk_full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(storage, "move", disk_full)  # e.g. the lake on another, full, filesystem
        with pytest.raises(OSError, match="No space left"):
            landing.claim(str(inbox), str(lake), PARQUET)
    assert sorted(os.listdir(inbox)) == ["a.parquet", "b.parquet"]  # back under their names, no .claiming-
    assert delivery.open_claims(str(lake)) == [] and storage.list_files(str(lake)) == []
    record = landing.claim(str(inbox), str(lake), PARQUET)  # the next poll, with space again
    assert record is not None and _names(record.claimed) == ["a.parquet", "b.parquet"]


def test_a_claim_left_undelivered_in_this_process_is_recovered_at_once(zone, monkeypatch):
    """The claim record could not be written after the moves (disk full): the next scan delivers it."""
    inbox, lake = zone
    (inbox / "a.parquet").write_bytes(b"a")
    real, saves = landing.Claim.save, []

    def save_fails_second_time(self):
        saves.append(self.state)
        if len(saves) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self)

    with monkeypatch.context() as patch:
        patch.setattr(landing.Claim, "save", save_fails_second_time)
        with pytest.raises(OSError, match="No space left"):
            landing.claim(str(inbox), str(lake), PARQUET)
    recovered = delivery.redeliver_due(str(lake), 3600.0, 5)  # no hour-long wait
    assert recovered is not None and _names(recovered.claimed) == ["a.parquet"] and recovered.deliveries


def test_stranded_claims_are_logged_with_their_files_and_age_and_shown_on_the_plugin_page(
    zone, tmp_path, monkeypatch, caplog
):
    from fastapi.testclient import TestClient

    from airflow_mlops.core.landing import recovery as claim_recovery
    from airflow_mlops.ui.web import create_app

    inbox, lake = zone
    (inbox / "a.parquet").write_bytes(b"a")
    _kill_claimer_at(tmp_path, str(inbox), str(lake), "local-move")
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "churn.yaml").write_text(SPEC)
    monkeypatch.setenv("AIRFLOW_MLOPS_PIPELINES_DIR", str(specs))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    client = TestClient(create_app(require_user=False))
    (pipeline,) = client.get("/api/pipelines").json()
    training = pipeline["claims"]["training"]
    assert training["open"] == 1 and len(training["stranded"]) == 1
    (entry,) = training["stranded"]
    assert entry["state"] == "claiming" and entry["files"] == ["a.parquet"] and entry["age_seconds"] >= 0
    assert "is gone" in entry["claimer"]
    (row,) = client.get("/api/overview").json()["pipelines"]  # what the overview page shows
    assert row["claims"]["training"]["stranded"][0]["files"] == ["a.parquet"]

    with caplog.at_level("WARNING", logger="airflow_mlops.core.landing.inbox"):
        recovered = delivery.redeliver_due(str(lake), 3600.0, 5)
    assert recovered is not None
    assert f"claim {recovered.claim_id} was never delivered" in caplog.text and "['a.parquet']" in caplog.text
    assert claim_recovery.stranded(str(lake))[0]["state"] == "claimed"  # delivered, not acknowledged yet
    claimed_uris_from_events(_context(recovered.payload()))
    assert claim_recovery.stranded(str(lake)) == []
    manifest = json.loads((Path(recovered.uri) / "_manifest.json").read_text())
    assert manifest["state"] == "claimed" and manifest["claimer"]["pid"] != os.getpid()
