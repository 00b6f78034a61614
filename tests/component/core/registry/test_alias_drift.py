"""An alias moved by hand (MLflow's UI, its client) is found, and the next move records it first.

Against a real MLflow registry (SQLite in tmp_path) with real small versions. A move "by hand"
is what MLflow's UI does: ``set_registered_model_alias`` (or its delete) and nothing else.
"""

from __future__ import annotations

import pytest

from airflow_mlops.core.registry import promotion
from airflow_mlops.core.registry.client import CHAMPION_ALIAS
from tests.conftest import EXAMPLE_SPEC
from tests.support.faults import At, run_killed_at
from tests.support.model_versions import SERVABLE, Versions

pytestmark = pytest.mark.component

RUN_1 = "churn_training/run-1"


@pytest.fixture
def store(tmp_path, spec):
    """v1 champion (recorded); v2 and v3 servable."""
    versions = Versions(f"sqlite:///{tmp_path}/mlflow.db", spec.registered_model_name, tmp_path)
    promotion.promote(versions.registry, versions.name, versions.add(SERVABLE, run=RUN_1), "gate passed", RUN_1)
    versions.add(SERVABLE)
    versions.add(SERVABLE)
    return versions


def _by_hand(store: Versions, version: str | None) -> None:
    if version is None:
        store.registry.client.delete_registered_model_alias(store.name, CHAMPION_ALIAS)
    else:
        store.registry.client.set_registered_model_alias(store.name, CHAMPION_ALIAS, version)


def _moves(store: Versions) -> list[tuple]:
    return [(r["from_version"], r["to_version"], r["by"], bool(r.get("manual")))
            for r in store.registry.promotion_history(store.name)]  # fmt: skip


def test_an_alias_that_agrees_with_the_history_is_no_drift(store):
    assert promotion.alias_drift(store.registry, store.name) is None
    assert promotion.alias_drift(store.registry, "no_such_model") is None


def test_an_alias_moved_by_hand_is_found_with_what_the_history_says(store, capsys):
    from airflow_mlops.cli import main

    recorded_at = store.registry.promotion_history(store.name)[-1]["at"]
    _by_hand(store, "2")
    assert promotion.alias_drift(store.registry, store.name) == {
        "alias_version": "2", "history_version": "1", "since": recorded_at,
    }  # fmt: skip
    assert main(["history", str(EXAMPLE_SPEC), "--tracking-uri", store.registry.tracking_uri]) == 0
    assert "moved outside airflow-mlops: the alias is on v2, the newest record says v1" in capsys.readouterr().out


def test_the_next_promotion_records_the_move_by_hand_before_its_own(store):
    recorded_at = store.registry.promotion_history(store.name)[-1]["at"]
    _by_hand(store, "2")
    record = promotion.promote(store.registry, store.name, "3", "gate passed", "churn_training/run-3")
    assert record["from_version"] == "2"
    assert _moves(store) == [
        (None, "1", RUN_1, False),
        ("1", "2", promotion.MANUAL_BY, True),
        ("2", "3", "churn_training/run-3", False),
    ]
    manual = store.registry.promotion_history(store.name)[1]
    assert manual["moved_after"] == recorded_at and manual["id"].startswith("manual-")
    assert promotion.alias_drift(store.registry, store.name) is None


def test_a_rollback_after_a_move_by_hand_undoes_that_move(store):
    _by_hand(store, "2")
    back = promotion.rollback(store.registry, store.name, by="cli/ops", reason="not this one")
    assert (back["from_version"], back["to_version"]) == ("2", "1")
    assert _moves(store)[-2:] == [("1", "2", promotion.MANUAL_BY, True), ("2", "1", "cli/ops", False)]
    assert str(store.registry.champion(store.name).version) == "1"


def test_an_alias_removed_by_hand_is_recorded_even_when_the_rollback_then_refuses(store):
    _by_hand(store, None)
    assert promotion.alias_drift(store.registry, store.name)["alias_version"] is None  # type: ignore[index]
    with pytest.raises(promotion.RollbackError, match="has no champion to roll back"):
        promotion.rollback(store.registry, store.name, by="cli/ops", reason="x")
    assert _moves(store)[-1] == ("1", None, promotion.MANUAL_BY, True)
    assert promotion.alias_drift(store.registry, store.name) is None


def test_a_move_by_hand_is_recorded_once(store):
    _by_hand(store, "3")
    first = promotion.record_manual_move(store.registry, store.name)
    assert first is not None and promotion.record_manual_move(store.registry, store.name) is None
    assert [r["id"] for r in store.registry.promotion_history(store.name)].count(first["id"]) == 1


def test_a_move_left_half_done_is_no_drift_and_is_not_recorded_as_manual(store):
    registry = store.registry
    run_killed_at(At("set_registered_model_alias"), promotion.promote, registry, store.name, "2", "gate passed",
                  "churn_training/run-2")  # fmt: skip
    assert str(registry.champion(store.name).version) == "2"  # moved, nothing recorded yet but the pending intent
    assert promotion.alias_drift(registry, store.name) is None
    promotion.promote(registry, store.name, "3", "gate passed", "churn_training/run-3")
    assert _moves(store) == [(None, "1", RUN_1, False), ("1", "2", "churn_training/run-2", False),
                             ("2", "3", "churn_training/run-3", False)]  # fmt: skip
