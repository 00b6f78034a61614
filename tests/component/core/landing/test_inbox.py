"""Data arrival exactly once: claims, redelivery with backoff, acknowledgement, races, S3."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections import Counter
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_mlops.core.io import storage
from airflow_mlops.core.landing import delivery
from airflow_mlops.core.landing import inbox as landing
from airflow_mlops.operators.base import acknowledge_claims, claimed_uris_from_events
from airflow_mlops.triggers.landing import LandingZoneTrigger
from tests.component.core.io.test_s3 import bucket, s3_server  # noqa: F401  (fixtures: moto S3 on 127.0.0.1)

pytestmark = pytest.mark.component

PARQUET = (".parquet",)
PIPELINE = "churn"


@pytest.fixture(autouse=True)
def _artifact_root(mlops_home, monkeypatch, tmp_path):
    """The lakes of these tests are the pipeline's (``<root>/churn/lake/...``): the consumer checks it."""
    monkeypatch.setenv("AIRFLOW_MLOPS_ARTIFACT_ROOT", str(tmp_path / "artifacts"))


def _lake(tmp_path):
    return tmp_path / "artifacts" / PIPELINE / "lake" / "scoring"


def _claims(tmp_path):
    return tmp_path / "artifacts" / PIPELINE / "lake" / "_claims" / "scoring"


def _land(folder, name, content=None, age=None):
    """A file of its own content (by default its name): equal content would be a duplicate."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(name.encode() if content is None else content)
    if age is not None:
        os.utime(path, (time.time() - age, time.time() - age))
    return path


async def _first_event(trigger):
    async for event in trigger.run():
        return event
    return None


def _event(trigger, timeout=5.0):
    return asyncio.run(asyncio.wait_for(_first_event(trigger), timeout))


def _context(payloads, dag_id="scoring", run_id="run-1"):
    """A task context whose run was triggered by these landing payloads (merged into one run)."""
    events = [SimpleNamespace(extra={"from_trigger": True, "payload": p}) for p in payloads]
    return {
        "dag": SimpleNamespace(dag_id=dag_id),
        "run_id": run_id,
        "task": SimpleNamespace(task_id="score", load_spec=lambda: SimpleNamespace(name=PIPELINE)),
        "triggering_asset_events": {"asset": events},
    }


# -- files landing together -----------------------------------------------------------------------


def test_a_file_still_being_written_is_claimed_by_a_later_poll_not_missed(tmp_path):
    inbox, lake = tmp_path / "in", _lake(tmp_path)
    _land(inbox, "settled.parquet", age=60)
    fresh = _land(inbox, "fresh.parquet")
    trigger = LandingZoneTrigger(inbox=str(inbox), destination=str(lake), poll_interval=0.05, min_age_seconds=0.6)
    first = _event(trigger)
    assert [u.rsplit("-", 1)[-1] for u in first.payload["claimed"]] == ["settled.parquet"]
    assert fresh.exists()  # left in the inbox, not lost
    second = _event(trigger)  # the restarted trigger picks it up once it is 0.6 s old
    assert [u.rsplit("-", 1)[-1] for u in second.payload["claimed"]] == ["fresh.parquet"]
    assert second.payload["claim_id"] != first.payload["claim_id"]
    assert not fresh.exists() and len(list(lake.iterdir())) == 2


def test_racing_claimers_never_claim_one_file_twice(tmp_path):
    inbox, lake = tmp_path / "in", _lake(tmp_path)
    for index in range(300):
        _land(inbox, f"f{index:03d}.parquet", content=f"batch-{index}".encode())
    results: list[list[str]] = []
    errors: list[BaseException] = []
    lock, start = threading.Lock(), threading.Barrier(8)

    def claimer():
        start.wait()
        mine: list[str] = []
        try:
            deadline = time.monotonic() + 30
            while os.listdir(inbox) and time.monotonic() < deadline:  # staged files count: not done yet
                mine.extend(landing.claim_new_files(str(inbox), str(lake), PARQUET))
        except BaseException as exc:
            errors.append(exc)
        with lock:
            results.append(mine)

    threads = [threading.Thread(target=claimer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    claimed = [uri for mine in results for uri in mine]
    assert len(claimed) == len(set(claimed)) == 300
    contents = Counter((lake / name).read_bytes() for name in os.listdir(lake))
    assert len(contents) == 300 and set(contents.values()) == {1}  # every batch once, none twice
    assert os.listdir(inbox) == []  # no staged leftovers
    manifests = [json.loads(p.read_text()) for p in (_claims(tmp_path)).glob("*/_manifest.json")]
    assert sorted(u for m in manifests for u in m["claimed"]) == sorted(claimed)  # each file in one claim


# -- crash recovery: redelivery with backoff ------------------------------------------------------


def test_a_claim_whose_event_was_lost_is_redelivered_by_the_restarted_trigger(tmp_path):
    inbox, lake = tmp_path / "in", _lake(tmp_path)
    _land(inbox, "a.parquet")
    _land(inbox, "b.parquet")
    lost = landing.claim(str(inbox), str(lake), PARQUET)  # the triggerer died before storing this event
    assert lost is not None and len(lost.claimed) == 2
    trigger = LandingZoneTrigger(inbox=str(inbox), destination=str(lake), poll_interval=0.05, min_age_seconds=0,
                                 redeliver_after_seconds=0.3)  # fmt: skip
    began = time.monotonic()
    event = _event(trigger)
    assert time.monotonic() - began >= 0.2  # not before its time
    assert event.payload["claim_id"] == lost.claim_id and event.payload["claimed"] == lost.claimed
    assert event.payload["delivery"] == 2
    assert landing.load_claim(lost.uri).deliveries[-1] >= lost.deliveries[0] + 0.3  # recorded before firing
    with pytest.raises(TimeoutError):  # the next redelivery waits twice as long: no loop
        _event(trigger, 0.45)


def test_redelivery_backs_off_and_gives_up(tmp_path):
    inbox, lake = tmp_path / "in", _lake(tmp_path)
    _land(inbox, "a.parquet")
    record = landing.claim(str(inbox), str(lake), PARQUET, now=1000.0)
    assert record is not None
    due = lambda now: delivery.redeliver_due(str(lake), 100.0, 3, now=now)  # noqa: E731
    assert due(1099.0) is None
    assert due(1100.0).deliveries == [1000.0, 1100.0]
    assert due(1100.0) is None and due(1299.0) is None  # every poll after a redelivery: nothing
    assert due(1300.0).deliveries == [1000.0, 1100.0, 1300.0]
    assert due(1699.0) is None
    assert due(1700.0) is None  # third delivery was the last: abandoned
    assert landing.load_claim(record.uri).state == "abandoned"
    assert delivery.open_claims(str(lake)) == []
    assert due(10**9) is None


def test_an_acknowledged_claim_is_never_redelivered(tmp_path):
    inbox, lake = tmp_path / "in", _lake(tmp_path)
    _land(inbox, "a.parquet")
    record = landing.claim(str(inbox), str(lake), PARQUET, now=1000.0)
    assert claimed_uris_from_events(_context([record.payload()])) == record.claimed
    assert delivery.redeliver_due(str(lake), 1.0, 5, now=10**9) is None
    assert delivery.open_claims(str(lake)) == []  # closed by the scan


def test_a_claimer_dying_half_way_strands_no_file(tmp_path, monkeypatch):
    inbox, lake = tmp_path / "in", _lake(tmp_path)
    for name in ("a.parquet", "b.parquet", "c.parquet"):
        _land(inbox, name)
    real, moves = storage.move, []

    def dies_on_second_move(src, dst):
        moves.append(src)
        if len(moves) == 2:
            raise SystemExit("triggerer killed")
        return real(src, dst)

    monkeypatch.setattr(storage, "move", dies_on_second_move)
    with pytest.raises(SystemExit):
        landing.claim(str(inbox), str(lake), PARQUET, now=1000.0)
    monkeypatch.setattr(storage, "move", real)
    assert sorted(os.listdir(inbox)) == [next(n for n in os.listdir(inbox) if n.startswith(".claiming-")), "c.parquet"]
    recovered = delivery.redeliver_due(str(lake), 10.0, 5, now=2000.0)
    assert recovered is not None and recovered.state == "claimed"
    assert [u.rsplit("-", 1)[-1] for u in recovered.claimed] == ["a.parquet", "b.parquet"]
    assert all(os.path.exists(u) for u in recovered.claimed)
    assert os.listdir(inbox) == ["c.parquet"]  # never taken: the next poll claims it
    assert [u.rsplit("-", 1)[-1] for u in landing.claim_new_files(str(inbox), str(lake), PARQUET)] == ["c.parquet"]


# -- the consumer: exactly-once processing ----------------------------------------------------


def test_a_duplicated_event_is_processed_once(tmp_path):
    inbox, lake = tmp_path / "in", _lake(tmp_path)
    _land(inbox, "a.parquet")
    first = landing.claim(str(inbox), str(lake), PARQUET)
    _land(inbox, "b.parquet")
    second = landing.claim(str(inbox), str(lake), PARQUET)
    # Two claims merged into one run, one of them delivered twice: each file once, in claim order.
    run1 = _context([second.payload(), first.payload(), second.payload()], run_id="run-1")
    assert claimed_uris_from_events(run1) == first.claimed + second.claimed
    # The redelivered event schedules another run: it processes nothing...
    assert claimed_uris_from_events(_context([first.payload()], run_id="run-2")) == []
    with pytest.raises(AirflowSkipException, match="already taken by another run"):
        acknowledge_claims(_context([first.payload()], run_id="run-2"), skip_duplicates=True)
    # ...while a retry (or clear) of the run that owns the claim processes it again,
    assert claimed_uris_from_events(run1) == first.claimed + second.claimed
    # and another DAG on the same asset gets its own copy of every claim.
    assert claimed_uris_from_events(_context([first.payload()], dag_id="audit")) == first.claimed
    acks = json.loads((_claims(tmp_path) / first.claim_id / "_ack-scoring.json").read_text())
    assert (acks["dag_id"], acks["run_id"], acks["task_id"]) == ("scoring", "run-1", "score")


def test_concurrent_runs_with_one_claim_process_it_once(tmp_path):
    inbox, lake = tmp_path / "in", _lake(tmp_path)
    _land(inbox, "a.parquet")
    record = landing.claim(str(inbox), str(lake), PARQUET)
    results: dict[str, list[str]] = {}
    start = threading.Barrier(10)

    def run(run_id):
        start.wait()
        results[run_id] = claimed_uris_from_events(_context([record.payload()], run_id=run_id))

    threads = [threading.Thread(target=run, args=(f"run-{i}",)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(len(uris) for uris in results.values()) == [0] * 9 + [1]


def test_events_without_a_claim_and_unrelated_events_pass_through(tmp_path):
    legacy = {"claimed": [f"{_lake(tmp_path)}/x.parquet"]}
    context = _context([legacy])
    context["triggering_asset_events"]["drift"] = [SimpleNamespace(extra={"scores": {}})]
    assert acknowledge_claims(context, skip_duplicates=True) == [f"{_lake(tmp_path)}/x.parquet"]
    assert claimed_uris_from_events({}) == []


def test_event_payloads_naming_places_outside_the_pipelines_lake_fail_the_task(tmp_path):
    """Anyone who may create asset events through the REST API writes the payload: check it."""
    inbox, lake = tmp_path / "in", _lake(tmp_path)
    _land(inbox, "a.parquet")
    record = landing.claim(str(inbox), str(lake), PARQUET)
    assert record is not None
    root = str(tmp_path / "artifacts" / PIPELINE / "lake")
    forged = {
        "claim_uri outside": {**record.payload(), "claim_uri": str(tmp_path / "elsewhere" / record.claim_id)},
        "claim_uri of another pipeline": {**record.payload(), "claim_uri": record.uri.replace("/churn/", "/other/")},
        "claim_uri escaping": {
            **record.payload(),
            "claim_uri": f"{root}/_claims/scoring/../../../../x/{record.claim_id}",
        },
        "claim_uri not a claim folder": {**record.payload(), "claim_uri": f"{root}/scoring/{record.claim_id}"},
        "claim_uri of another claim id": {**record.payload(), "claim_id": "other"},
        "claimed outside": {**record.payload(), "claimed": ["/etc/passwd"]},
        "claimed escaping": {**record.payload(), "claimed": [f"{root}/scoring/../../../secret.parquet"]},
        "claimed in the claims": {**record.payload(), "claimed": [f"{root}/_claims/scoring/x.parquet"]},
        "legacy claimed outside": {"claimed": ["s3://b/x.parquet"]},
    }
    for case, payload in forged.items():
        bad = payload.get("claim_uri") if case.startswith("claim_uri") else payload["claimed"][0]
        with pytest.raises(AirflowFailException, match="refusing") as raised:
            claimed_uris_from_events(_context([record.payload(), payload]))
        assert repr(bad) in str(raised.value), case
    assert not (tmp_path / "elsewhere").exists()
    assert landing.acks(record.uri) == []  # checked before anything is acknowledged
    with pytest.raises(AirflowFailException, match="no pipeline"):  # nothing to check against: refused
        acknowledge_claims({**_context([record.payload()]), "task": SimpleNamespace(task_id="score")})
    assert claimed_uris_from_events(_context([record.payload()])) == record.claimed  # the genuine event


# -- S3 (moto) -------------------------------------------------------------------------------------


def test_s3_claims_are_exclusive_acknowledged_and_redelivered(bucket, monkeypatch):  # noqa: F811
    monkeypatch.setenv("AIRFLOW_MLOPS_ARTIFACT_ROOT", f"s3://{bucket}/artifacts")
    inbox, lake = f"s3://{bucket}/landing/churn/scoring", f"s3://{bucket}/artifacts/churn/lake/scoring"
    for index in range(40):
        storage.write_bytes(f"batch-{index}".encode(), f"{inbox}/f{index:02d}.parquet")
    results: list[list[str]] = []
    lock, start = threading.Lock(), threading.Barrier(4)

    def claimer():
        start.wait()
        mine = landing.claim_new_files(inbox, lake, PARQUET)
        with lock:
            results.append(mine)

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    claimed = [uri for mine in results for uri in mine]
    assert len(claimed) == len(set(claimed)) == 40  # the conditional lock: one claimer per file
    assert storage.list_files(inbox) == []
    assert sorted(storage.read_bytes(u) for u in storage.list_files(lake)) == sorted(
        f"batch-{i}".encode() for i in range(40)
    )
    assert storage.list_files(lake) == sorted(claimed)  # nothing else in the lake folder

    open_ids = delivery.open_claims(lake)
    assert len(open_ids) == len([mine for mine in results if mine])
    owner = landing.load_claim(landing.claim_uri(lake, open_ids[0]))
    assert claimed_uris_from_events(_context([owner.payload()])) == owner.claimed
    assert claimed_uris_from_events(_context([owner.payload()], run_id="run-2")) == []  # S3 ack is exclusive too
    future = time.time() + 10**6
    redelivered = []
    for _ in range(len(open_ids) + 3):  # bounded: a claim firing on every scan would fail here, not hang
        due = delivery.redeliver_due(lake, 1.0, 5, now=future)
        if due is None:
            break
        redelivered.append(due.claim_id)
    assert sorted(redelivered) == sorted(open_ids[1:])  # every claim but the acknowledged one
    assert delivery.redeliver_due(lake, 1.0, 5, now=future) is None


def test_s3_trigger_claims_files_landing_together(bucket):  # noqa: F811
    inbox, lake = f"s3://{bucket}/in", f"s3://{bucket}/lake/scoring"
    storage.write_bytes(b"1", f"{inbox}/a.parquet")
    storage.write_bytes(b"2", f"{inbox}/b.csv")
    trigger = LandingZoneTrigger(inbox=inbox, destination=lake, poll_interval=0.05, min_age_seconds=0)
    event = _event(trigger, 20)
    assert [u.rsplit("-", 1)[-1] for u in event.payload["claimed"]] == ["a.parquet", "b.csv"]
    assert storage.list_files(inbox, (".parquet", ".csv")) == []
    assert storage.read_json(f"{event.payload['claim_uri']}/_manifest.json")["state"] == "claimed"


def _s3_zone(name):
    return f"s3://{name}/landing/churn/scoring", f"s3://{name}/artifacts/churn/lake/scoring"


def _locks(lake):
    return storage.list_files_recursive(f"{landing.claims_root(lake)}/_locks", ("",))


def _slow_down(operation="CopyObject"):
    from botocore.exceptions import ClientError

    error = {"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}}
    return ClientError({**error, "ResponseMetadata": {"HTTPStatusCode": 503}}, operation)


def test_s3_a_copy_failing_after_the_lock_releases_it_and_the_next_poll_claims_the_file(bucket, monkeypatch):  # noqa: F811
    from airflow_mlops.core.io import s3

    inbox, lake = _s3_zone(bucket)
    storage.write_bytes(b"a", f"{inbox}/a.parquet")
    storage.write_bytes(b"b", f"{inbox}/b.parquet")
    client, failures = s3.client_for(inbox), []
    real_copy = client.copy

    def copy_failing_once(*args, **kwargs):
        if not failures:
            failures.append(args)
            raise _slow_down()
        return real_copy(*args, **kwargs)

    monkeypatch.setattr(client, "copy", copy_failing_once)  # the managed (multipart) copy
    first = landing.claim(inbox, lake, PARQUET)  # a fails, b is claimed all the same
    assert failures and first is not None and [u.rsplit("-", 1)[-1] for u in first.claimed] == ["b.parquet"]
    assert len(_locks(lake)) == 1 and storage.list_files(inbox) == [f"{inbox}/a.parquet"]  # a's lock: removed
    second = landing.claim(inbox, lake, PARQUET)  # the next poll
    assert second is not None and [u.rsplit("-", 1)[-1] for u in second.claimed] == ["a.parquet"]
    assert storage.list_files(inbox) == [] and storage.list_files(lake) == sorted(first.claimed + second.claimed)
    assert landing.claim(inbox, lake, PARQUET) is None
    assert sorted(storage.read_bytes(u) for u in storage.list_files(lake)) == [b"a", b"b"]  # each once


def test_s3_a_claim_whose_only_copy_fails_raises_and_leaves_nothing_behind(bucket, monkeypatch):  # noqa: F811
    from airflow_mlops.core.io import s3

    inbox, lake = _s3_zone(bucket)
    storage.write_bytes(b"a", f"{inbox}/a.parquet")
    client = s3.client_for(inbox)
    with monkeypatch.context() as patch:
        patch.setattr(client, "copy", lambda *args, **kwargs: (_ for _ in ()).throw(_slow_down()))
        with pytest.raises(Exception, match="SlowDown"):  # the trigger backs off and polls again
            landing.claim(inbox, lake, PARQUET)
    assert _locks(lake) == [] and storage.list_files(lake) == [] and delivery.open_claims(lake) == []
    record = landing.claim(inbox, lake, PARQUET)
    assert record is not None and [storage.read_bytes(u) for u in record.claimed] == [b"a"]


def _die_after_the_lock(client, monkeypatch):
    """The triggerer killed after the lock PUT: no copy, and no clean-up either."""

    def killed(*args, **kwargs):
        raise SystemExit("triggerer killed")

    monkeypatch.setattr(client, "copy", killed)
    monkeypatch.setattr(client, "delete_object", killed)


def test_s3_a_claimer_killed_after_the_lock_is_completed_by_recovery(bucket, monkeypatch):  # noqa: F811
    from airflow_mlops.core.io import s3

    inbox, lake = _s3_zone(bucket)
    storage.write_bytes(b"a", f"{inbox}/a.parquet")
    client = s3.client_for(inbox)
    with monkeypatch.context() as patch:
        _die_after_the_lock(client, patch)
        with pytest.raises(SystemExit):
            landing.claim(inbox, lake, PARQUET)
    assert len(_locks(lake)) == 1 and storage.list_files(lake) == []
    assert landing.claim(inbox, lake, PARQUET) is None  # locked, and the lock is young: left to recovery
    recovered = delivery.redeliver_due(lake, 1.0, 5, now=time.time() + 10)
    assert recovered is not None and recovered.state == "claimed"
    assert [u.rsplit("-", 1)[-1] for u in recovered.claimed] == ["a.parquet"]
    assert storage.list_files(lake) == recovered.claimed and storage.read_bytes(recovered.claimed[0]) == b"a"
    assert storage.list_files(inbox) == []
    assert landing.claim(inbox, lake, PARQUET, stale_lock_seconds=0) is None  # exactly once


def test_s3_recovery_releases_the_lock_of_a_file_overwritten_since(bucket, monkeypatch):  # noqa: F811
    from airflow_mlops.core.io import s3

    inbox, lake = _s3_zone(bucket)
    storage.write_bytes(b"old", f"{inbox}/a.parquet")
    with monkeypatch.context() as patch:
        _die_after_the_lock(s3.client_for(inbox), patch)
        with pytest.raises(SystemExit):
            landing.claim(inbox, lake, PARQUET)
    storage.write_bytes(b"new", f"{inbox}/a.parquet")  # a new version: a new lock identity
    assert delivery.redeliver_due(lake, 1.0, 5, now=time.time() + 10) is None  # nothing of its own: discarded
    assert _locks(lake) == []
    record = landing.claim(inbox, lake, PARQUET)
    assert record is not None and [storage.read_bytes(u) for u in record.claimed] == [b"new"]


def test_s3_a_stale_lock_whose_claim_is_gone_is_released_with_a_warning(bucket, monkeypatch, caplog):  # noqa: F811
    from airflow_mlops.core.io import s3

    inbox, lake = _s3_zone(bucket)
    storage.write_bytes(b"a", f"{inbox}/a.parquet")
    with monkeypatch.context() as patch:
        _die_after_the_lock(s3.client_for(inbox), patch)
        with pytest.raises(SystemExit):
            landing.claim(inbox, lake, PARQUET)
    (dead_id,) = delivery.open_claims(lake)
    s3.delete(f"{landing.claim_uri(lake, dead_id)}/_manifest.json")  # e.g. left by an older version
    assert landing.claim(inbox, lake, PARQUET) is None  # young: another claimer may be copying it
    with caplog.at_level("WARNING", logger="airflow_mlops.core.landing.inbox"):
        assert landing.claim(inbox, lake, PARQUET, stale_lock_seconds=0) is None
    assert f"{inbox}/a.parquet was blocked by a stale lock" in caplog.text and "missing" in caplog.text
    record = landing.claim(inbox, lake, PARQUET, stale_lock_seconds=0)
    assert record is not None and [u.rsplit("-", 1)[-1] for u in record.claimed] == ["a.parquet"]


def test_s3_a_source_left_behind_after_its_copy_is_never_claimed_twice(bucket, monkeypatch, caplog):  # noqa: F811
    from airflow_mlops.core.io import s3

    inbox, lake = _s3_zone(bucket)
    storage.write_bytes(b"a", f"{inbox}/a.parquet")
    client = s3.client_for(inbox)
    with monkeypatch.context() as patch:
        patch.setattr(client, "delete_object", lambda **kwargs: (_ for _ in ()).throw(_slow_down("DeleteObject")))
        record = landing.claim(inbox, lake, PARQUET)  # claimed: the copy is in the lake
    assert record is not None and len(record.claimed) == 1
    assert storage.list_files(inbox) == [f"{inbox}/a.parquet"]
    assert landing.claim(inbox, lake, PARQUET) is None  # its lock blocks it
    with caplog.at_level("WARNING", logger="airflow_mlops.core.landing.inbox"):
        assert landing.claim(inbox, lake, PARQUET, stale_lock_seconds=0) is None  # old lock: source deleted
    assert "still in the inbox; deleting it" in caplog.text
    assert storage.list_files(inbox) == [] and storage.list_files(lake) == record.claimed


def test_s3_settled_files_come_from_the_listing_without_a_head_per_file(bucket, monkeypatch):  # noqa: F811
    from airflow_mlops.core.io import s3

    inbox, _ = _s3_zone(bucket)
    for name in ("a.parquet", "b.parquet", "_marker.parquet", "c.txt"):
        storage.write_bytes(b"x", f"{inbox}/{name}")

    def no_head(**kwargs):
        raise AssertionError(f"HEAD {kwargs}")

    monkeypatch.setattr(s3.client_for(inbox), "head_object", no_head)
    assert landing.settled_files(inbox, PARQUET) == [f"{inbox}/a.parquet", f"{inbox}/b.parquet"]
    assert landing.settled_files(inbox, PARQUET, min_age_seconds=3600) == []
