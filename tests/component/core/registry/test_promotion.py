"""Champion moves survive a kill or an outage at any step, and a retried or cleared run never moves twice.

Against a real MLflow registry (SQLite in tmp_path) with real small versions
(``tests.support.model_versions``). A kill is a SIGKILL of a fresh process right at one
MLflow client call (``tests.support.faults``); the retry then runs here, as Airflow's would.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from airflow_mlops.core.model import release
from airflow_mlops.core.registry import promotion
from airflow_mlops.core.registry.client import HISTORY_TAG
from tests.conftest import EXAMPLE_SPEC
from tests.support.faults import At, Outage, failing_at, run_killed_at
from tests.support.model_versions import SERVABLE, Versions

pytestmark = pytest.mark.component

RUN_1, RUN_2 = "churn_training/run-1", "churn_training/run-2"


@pytest.fixture
def store(tmp_path, spec):
    """v1 (registered by run-1) is champion; v2, registered by run-2, passed its gate against it."""
    versions = Versions(f"sqlite:///{tmp_path}/mlflow.db", spec.registered_model_name, tmp_path)
    v1 = versions.add(SERVABLE, run=RUN_1)
    promotion.promote(versions.registry, versions.name, v1, "gate passed", RUN_1)
    versions.add(SERVABLE, run=RUN_2)
    return versions


def _gate(store: Versions, version: str = "2", champion: str | None = "1") -> dict:
    return {"promote": True, "name": store.name, "version": version, "champion_version": champion,
            "reasons": ["all gates passed"]}  # fmt: skip


def _champion(store: Versions) -> str | None:
    current = store.registry.champion(store.name)
    return None if current is None else str(current.version)


def _moves(store: Versions) -> list[tuple]:
    return [(h["from_version"], h["to_version"], h["by"])
            for h in store.registry.promotion_history(store.name)]  # fmt: skip


def _pending(store: Versions) -> str | None:
    return store.registry.client.get_registered_model(store.name).tags.get("promotion_pending")


def test_a_promotion_killed_right_after_the_alias_moved_is_finished_by_its_retry(store):
    registry = store.registry
    run_killed_at(At("set_registered_model_alias"), release.promote_candidate, registry, _gate(store), by=RUN_2)
    assert _champion(store) == "2"  # moved, then killed before anything was recorded
    record = release.promote_candidate(registry, _gate(store), by=RUN_2)  # the retry: its own move is no conflict
    assert (record["from_version"], record["to_version"], record["run"]) == ("1", "2", RUN_2)
    assert _moves(store) == [(None, "1", RUN_1), ("1", "2", RUN_2)]
    assert json.loads(registry.client.get_model_version(store.name, "2").tags["promotion"]) == record
    assert _pending(store) is None
    # The move is on record, so the deploy step's rollback (and an operator's) works.
    back = promotion.rollback(registry, store.name, by="ops", reason="bad canary")
    assert (back["from_version"], back["to_version"]) == ("2", "1") and _champion(store) == "1"


def test_a_promotion_killed_before_the_alias_moved_is_made_by_its_retry(store, capsys):
    from airflow_mlops.cli import main

    registry = store.registry
    killed = At("set_registered_model_tag", arg=promotion.PENDING_TAG)  # the intent written, nothing else
    run_killed_at(killed, release.promote_candidate, registry, _gate(store), by=RUN_2)
    assert _champion(store) == "1" and _pending(store) is not None
    assert main(["history", str(EXAMPLE_SPEC), "--tracking-uri", registry.tracking_uri]) == 0
    assert f"unfinished: v1 -> v2 by {RUN_2}" in capsys.readouterr().out
    record = release.promote_candidate(registry, _gate(store), by=RUN_2)
    assert (record["from_version"], record["to_version"]) == ("1", "2") and _champion(store) == "2"
    assert _moves(store) == [(None, "1", RUN_1), ("1", "2", RUN_2)] and _pending(store) is None


def test_a_move_left_half_done_is_recorded_by_the_next_rollback_not_refused(store):
    registry = store.registry
    run_killed_at(At("set_registered_model_alias"), release.promote_candidate, registry, _gate(store), by=RUN_2)
    # No retry: an operator sees bad answers from v2 and rolls back at once.
    back = promotion.rollback(registry, store.name, by="cli/ops", reason="bad canary")
    assert (back["from_version"], back["to_version"]) == ("2", "1")
    assert _moves(store) == [(None, "1", RUN_1), ("1", "2", RUN_2), ("2", "1", "cli/ops")]


@pytest.mark.parametrize(
    "outage",
    [
        At("set_model_version_tag", arg="promotion"),
        At("set_registered_model_tag", arg=HISTORY_TAG),
        At("delete_registered_model_tag", arg=promotion.PENDING_TAG),
    ],
    ids=["version-tag", "history", "pending-cleanup"],
)
def test_an_outage_after_the_alias_moved_fails_the_task_and_its_retry_completes_the_record(store, monkeypatch, outage):
    registry = store.registry
    with failing_at(outage, monkeypatch), pytest.raises(Outage):
        release.promote_candidate(registry, _gate(store), by=RUN_2)  # never green with the history short
    assert _champion(store) == "2"
    record = release.promote_candidate(registry, _gate(store), by=RUN_2)
    assert (record["from_version"], record["to_version"]) == ("1", "2")
    assert _moves(store) == [(None, "1", RUN_1), ("1", "2", RUN_2)] and _pending(store) is None


def test_a_cleared_run_after_its_own_promotion_returns_the_same_record_and_moves_nothing(store):
    registry = store.registry
    first = release.promote_candidate(registry, _gate(store), by=RUN_2)
    assert release.promote_candidate(registry, _gate(store), by=RUN_2) == first
    assert _moves(store) == [(None, "1", RUN_1), ("1", "2", RUN_2)]
    # A full clear that retrained: the same run's newer version is not promoted over its own first one.
    store.add(SERVABLE, run=RUN_2)
    with pytest.raises(promotion.PromotionSuperseded, match=r"run churn_training/run-2 already promoted .*v1 -> v2"):
        release.promote_candidate(registry, _gate(store, version="3", champion="2"), by=RUN_2)
    assert _champion(store) == "2"


def test_clearing_a_promote_task_after_a_rollback_skips_and_never_promotes_the_rolled_back_version(store, monkeypatch):
    from airflow.sdk.exceptions import AirflowSkipException

    from airflow_mlops.operators.release import PromoteModelOperator

    registry = store.registry
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_TEST", f'{{"conn_type": "mlflow", "host": "{registry.tracking_uri}"}}')
    context = {"dag": SimpleNamespace(dag_id="churn_training"), "run_id": "run-2", "outlet_events": {}}
    operator = PromoteModelOperator(
        task_id="promote", spec_path=str(EXAMPLE_SPEC), mlflow_conn_id="mlflow_test", gate=_gate(store)
    )
    assert operator.execute(context)["to_version"] == "2"  # type: ignore[arg-type]
    promotion.rollback(registry, store.name, by="cli/ops", reason="bad canary")
    with pytest.raises(AirflowSkipException) as skipped:
        operator.execute(context)  # type: ignore[arg-type]  # the old green run, cleared
    message = str(skipped.value)
    assert "already promoted" in message and "v2 -> v1 (rollback: bad canary, by cli/ops" in message
    assert _champion(store) == "1"
    assert _moves(store) == [(None, "1", RUN_1), ("1", "2", RUN_2), ("2", "1", "cli/ops")]


def test_another_runs_candidate_is_still_refused_when_the_champion_moved_while_it_was_evaluating(store):
    stale = _gate(store, champion=None)  # compared with "no champion", but run-1 promoted v1 since
    with pytest.raises(RuntimeError, match="moved from None to 1 while this run was evaluating"):
        release.promote_candidate(store.registry, stale, by=RUN_2)
    assert _champion(store) == "1"


def test_a_rollback_task_killed_after_the_alias_moved_is_not_undone_by_its_retry(store):
    registry = store.registry
    release.promote_candidate(registry, _gate(store), by=RUN_2)
    request = "ops/manual-1/rollback"
    run_killed_at(At("set_registered_model_alias"), promotion.rollback, registry, store.name, by="ops/manual-1",
                  reason="alerts", run=request)  # fmt: skip
    assert _champion(store) == "1"
    record = promotion.rollback(registry, store.name, by="ops/manual-1", reason="alerts", run=request)  # the retry
    assert (record["from_version"], record["to_version"], record["rollback"]) == ("2", "1", True)
    assert _champion(store) == "1"  # not flipped back to v2
    assert _moves(store) == [(None, "1", RUN_1), ("1", "2", RUN_2), ("2", "1", "ops/manual-1")]
