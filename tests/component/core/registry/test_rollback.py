"""Rollback refuses versions that cannot be served, unless forced, and can itself be undone.

Against a real MLflow registry (SQLite in tmp_path). Versions carry real artifacts (a small
model and its ONNX graph, ``tests.support.model_versions``) and the tags ``register_candidate``
and ``gate_candidate`` set (``gate``, ``gate_reasons``, ``onnx_uri``, ``onnx_parity``), so
each case states exactly what the version carries.
"""

from __future__ import annotations

import pytest

from airflow_mlops.core.registry import promotion
from airflow_mlops.core.registry.client import Registry
from tests.conftest import EXAMPLE_SPEC
from tests.support.model_versions import SERVABLE, Versions

pytestmark = pytest.mark.component


@pytest.fixture
def model(tmp_path, spec):
    """(registry, registered model name, add(tags) -> version) on a fresh SQLite store."""
    versions = Versions(f"sqlite:///{tmp_path}/mlflow.db", spec.registered_model_name, tmp_path)
    return versions.registry, versions.name, versions.add


def _champion(registry: Registry, name: str) -> str:
    return str(registry.champion(name).version)


def test_a_version_that_failed_its_gate_is_refused_with_the_reason(model):
    registry, name, add = model
    failed = add({**SERVABLE, "gate": "failed", "gate_reasons": "roc_auc=0.6100 fails the threshold >= 0.7"})
    good = add(SERVABLE)
    promotion.promote(registry, name, good, "gate passed", "test")
    with pytest.raises(promotion.RollbackError) as refused:
        promotion.rollback(registry, name, by="test", reason="x", to_version=failed)
    message = str(refused.value)
    assert f"v{failed}" in message
    assert "failed its promotion gate (roc_auc=0.6100 fails the threshold >= 0.7)" in message
    assert "--force" in message
    assert _champion(registry, name) == good  # nothing moved
    assert len(registry.promotion_history(name)) == 1


def test_a_version_never_gated_is_refused(model):
    registry, name, add = model
    ungated = add({"onnx_uri": "runs:/r/onnx/model.onnx"})  # e.g. registered by hand
    promotion.promote(registry, name, add(SERVABLE), "gate passed", "test")
    with pytest.raises(promotion.RollbackError, match=f"v{ungated} .*no gate verdict"):
        promotion.rollback(registry, name, by="test", reason="x", to_version=ungated)


def test_a_version_without_a_parity_checked_onnx_graph_is_refused(model):
    registry, name, add = model
    no_onnx = add({"gate": "passed", "onnx_parity": "failed"})
    promotion.promote(registry, name, add(SERVABLE), "gate passed", "test")
    with pytest.raises(promotion.RollbackError) as refused:
        promotion.rollback(registry, name, by="test", reason="x", to_version=no_onnx)
    assert f"v{no_onnx}" in str(refused.value)
    assert "no parity-checked ONNX graph" in str(refused.value) and "parity check failed" in str(refused.value)
    assert "failed its promotion gate" not in str(refused.value)


def test_rollback_without_a_target_refuses_an_unservable_previous_champion(model):
    registry, name, add = model
    first = add({"gate": "failed", "gate_reasons": "promoted by hand"})  # no ONNX either
    promotion.promote(registry, name, first, "by hand", "someone")
    promotion.promote(registry, name, add(SERVABLE), "gate passed", "test")
    with pytest.raises(promotion.RollbackError) as refused:
        promotion.rollback(registry, name, by="test", reason="alerts")
    assert f"v{first}" in str(refused.value)
    assert "failed its promotion gate" in str(refused.value) and "no parity-checked ONNX graph" in str(refused.value)


def test_force_restores_it_and_the_history_records_the_rollback_as_forced(model):
    registry, name, add = model
    failed = add({"gate": "failed", "gate_reasons": "log_loss too high"})
    current = add(SERVABLE)
    promotion.promote(registry, name, current, "gate passed", "test")
    record = promotion.rollback(registry, name, by="ops", reason="v2 crashes", to_version=failed, force=True)
    assert _champion(registry, name) == failed
    last = registry.promotion_history(name)[-1]
    assert last == record
    assert (last["from_version"], last["to_version"]) == (current, failed)
    assert last["rollback"] is True and last["forced"] is True
    assert last["reason"] == "rollback (forced): v2 crashes"
    assert any("log_loss too high" in why for why in last["forced_past"])
    assert any("ONNX" in why for why in last["forced_past"])


def test_an_unforced_rollback_is_recorded_as_a_plain_rollback(model):
    registry, name, add = model
    first, second = add(SERVABLE), add(SERVABLE)
    promotion.promote(registry, name, first, "gate passed", "run-1")
    promotion.promote(registry, name, second, "gate passed", "run-2")
    record = promotion.rollback(registry, name, by="ops", reason="alerts", force=True)  # nothing to force past
    assert (record["from_version"], record["to_version"]) == (second, first)
    assert record["rollback"] is True and "forced" not in record and record["reason"] == "rollback: alerts"


def test_a_rollback_can_be_undone_by_another_rollback(model):
    registry, name, add = model
    a, b = add(SERVABLE), add(SERVABLE)
    promotion.promote(registry, name, a, "gate passed", "run-1")
    promotion.promote(registry, name, b, "gate passed", "run-2")
    assert promotion.rollback(registry, name, by="ops", reason="alerts")["to_version"] == a
    assert _champion(registry, name) == a
    assert promotion.rollback(registry, name, by="ops", reason="false alarm")["to_version"] == b
    assert _champion(registry, name) == b
    assert promotion.rollback(registry, name, by="ops", reason="alerts again")["to_version"] == a
    moves = [(h["from_version"], h["to_version"]) for h in registry.promotion_history(name)]
    assert moves == [(None, a), (a, b), (b, a), (a, b), (b, a)]


def test_the_first_champion_has_nothing_to_roll_back_to(model):
    registry, name, add = model
    promotion.promote(registry, name, add(SERVABLE), "gate passed", "run-1")
    with pytest.raises(promotion.RollbackError, match="no earlier champion recorded"):
        promotion.rollback(registry, name, by="ops", reason="x")


def test_the_command_line_refuses_then_forces_and_history_shows_it(model, capsys):
    from airflow_mlops.cli import main

    registry, name, add = model
    failed = add({"gate": "failed", "gate_reasons": "roc_auc below threshold"})
    promotion.promote(registry, name, add(SERVABLE), "gate passed", "run-1")
    argv = ["rollback", str(EXAMPLE_SPEC), "--tracking-uri", registry.tracking_uri, "--to", failed, "--reason", "test"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("rollback refused:") and f"v{failed}" in err and "roc_auc below threshold" in err
    assert main([*argv, "--force"]) == 0
    out = capsys.readouterr().out
    assert f"v2 -> v{failed} (rollback (forced): test" in out and "forced past: it failed its promotion gate" in out
    assert main(["history", str(EXAMPLE_SPEC), "--tracking-uri", registry.tracking_uri]) == 0
    assert "rollback (forced): test" in capsys.readouterr().out.splitlines()[-1]
    # Undo the forced rollback: v2 (servable) is champion again.
    assert main(["rollback", str(EXAMPLE_SPEC), "--tracking-uri", registry.tracking_uri]) == 0
    assert _champion(registry, name) == "2"


def test_the_operator_fails_without_retry_on_a_refusal_and_forces_when_told(model, monkeypatch):
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowFailException

    from airflow_mlops.operators.release import RollbackChampionOperator

    registry, name, add = model
    failed = add({"gate": "failed", "gate_reasons": "too slow"})
    promotion.promote(registry, name, add(SERVABLE), "gate passed", "run-1")
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_TEST", f'{{"conn_type": "mlflow", "host": "{registry.tracking_uri}"}}')
    context = {"dag": SimpleNamespace(dag_id="ops"), "run_id": "manual-1", "outlet_events": {}}
    kwargs = {"spec_path": str(EXAMPLE_SPEC), "mlflow_conn_id": "mlflow_test", "to_version": failed}
    with pytest.raises(AirflowFailException, match=f"rollback refused: .*v{failed}.*too slow"):
        RollbackChampionOperator(task_id="rollback", **kwargs).execute(context)  # type: ignore[arg-type]
    assert _champion(registry, name) == "2"
    record = RollbackChampionOperator(task_id="rollback", force=True, **kwargs).execute(context)  # type: ignore[arg-type]
    assert record["forced"] is True and record["by"] == "ops/manual-1"
    assert _champion(registry, name) == failed
