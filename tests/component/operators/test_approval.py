"""The approval through Airflow's own human-in-the-loop machinery, on a real Airflow database and MLflow store.

``dag.test()`` runs gate -> approve -> promote (the training DAG's tail, the real operators);
the approval is answered the way the api-server answers it (its ``PATCH .../hitlDetails``
handler, ``tests.support.airflow_db``). Asserted: what the reviewer was shown, the ``approval``
tag on the candidate for an approval and a rejection, who the promotion history names, and
that a rejected candidate never becomes champion.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.core.model import release
from airflow_mlops.core.registry import promotion
from tests.conftest import EXAMPLE_SPEC
from tests.support.airflow_db import AirflowHome, migrated_database
from tests.support.model_versions import SERVABLE, Versions

pytestmark = pytest.mark.component

RUN_1, RUN_2 = "churn_training/run-1", "churn_training/run-2"

DAG_FILE = """
import datetime as dt
import json

from airflow.sdk import DAG, task

from airflow_mlops.factories.assets import pipeline_assets
from airflow_mlops.operators.approval import PromotionApprovalOperator
from airflow_mlops.operators.release import PromoteModelOperator

GATE = json.loads({gate!r})
MLFLOW = {conn_id!r}

with DAG({dag_id!r}, schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False) as dag:

    @task(task_id="gate")
    def gate():
        return GATE

    result = gate()
    approve = PromotionApprovalOperator(task_id="approve", gate=result, defaults="Reject", mlflow_conn_id=MLFLOW,
                                        response_timeout=dt.timedelta(hours=2), retries=0)  # fmt: skip
    promote = PromoteModelOperator(task_id="promote", gate=result, spec_path={spec!r}, mlflow_conn_id=MLFLOW,
                                   outlets=[pipeline_assets("churn").champion])  # fmt: skip
    result >> approve >> promote
"""
ANSWERS = {
    "approved": {"chosen_options": ["Approve"], "params_input": {"comment": "recall drop accepted for Q1"},
                 "user": "alice"},
    "rejected": {"chosen_options": ["Reject"], "params_input": {"comment": "recall matters more"}, "user": "bob"},
}  # fmt: skip


def _gated(folder: Path, spec: Any) -> tuple[Versions, dict[str, Any]]:
    """v1 is champion; v2 passed its gate against it: better roc_auc, recall 6.7 points lower."""
    folder.mkdir(parents=True)
    versions = Versions(f"sqlite:///{folder}/mlflow.db", spec.registered_model_name, folder)
    v1 = versions.add(SERVABLE, run=RUN_1)
    promotion.promote(versions.registry, versions.name, v1, "gate passed", RUN_1)
    v2 = versions.add(SERVABLE, run=RUN_2)
    evaluation = {
        "candidate": {"roc_auc": 0.84, "recall": 0.6012, "precision": 0.71, "accuracy": 0.8},
        "champion": {"roc_auc": 0.81, "recall": 0.6679, "precision": 0.70, "accuracy": 0.79},
        "champion_error": None, "champion_version": v1, "slices": {}, "importance": {},
    }  # fmt: skip
    parity = {"rows": 400, "max_abs_diff": 2e-7, "max_scaled_diff": 2e-7, "relative_to_magnitude": False,
              "rows_over_tolerance": 0, "labels_agree": 1.0, "tolerance": 1e-4, "passed": True}  # fmt: skip
    package = {"onnx_uri": "runs:/x/onnx/model.onnx", "error": None, "policy": "required", "parity": parity}
    gate = release.gate_candidate(spec, versions.registry, {"name": versions.name, "version": v2}, evaluation, package)
    assert gate["promote"]
    return versions, dict(gate)


@pytest.fixture(scope="module")
def answered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One DAG per answer, each on its own MLflow store, run in one interpreter (Airflow's in-process
    API takes most of a minute to start): the stores, the gates, the runs."""
    from airflow_mlops.spec import load_spec

    spec = load_spec(EXAMPLE_SPEC)
    root = tmp_path_factory.mktemp("approval")
    stores = {decision: _gated(root / decision, spec) for decision in ANSWERS}
    home = AirflowHome(root / "airflow", migrated_database(root / "template"),
                       {f"mlflow_{d}": {"conn_type": "mlflow", "host": versions.tracking_uri}
                        for d, (versions, _) in stores.items()})  # fmt: skip
    files = []
    for decision, (_, gate) in stores.items():
        path = home.folder / "dags" / f"approval_{decision}.py"
        path.write_text(DAG_FILE.format(gate=json.dumps(gate), spec=str(EXAMPLE_SPEC), dag_id=f"approval_{decision}",
                                        conn_id=f"mlflow_{decision}"))  # fmt: skip
        files.append(str(path))
    answers = {f"approval_{d}": {"approve": answer} for d, answer in ANSWERS.items()}
    runs = home.run("test-dags", {"dag_files": files, "answers": answers}, timeout=600,
                    extra_env={"AIRFLOW_MLOPS_HOME": str(root / "mlops")})  # fmt: skip
    return {"stores": stores, "runs": {d: runs[f"approval_{d}"] for d in ANSWERS}}


def _tags(versions: Versions, version: str) -> dict[str, str]:
    return dict(versions.registry.client.get_model_version(versions.name, version).tags)


def test_the_reviewer_sees_every_metric_side_by_side_and_can_comment(answered):
    versions, _ = answered["stores"]["approved"]
    request = answered["runs"]["approved"]["requests"]["approve"]
    assert request["subject"] == f"Promote {versions.name} v2 to champion?"
    body = request["body"]
    assert "| **roc_auc** (gate) | 0.8400 | 0.8100 | +0.03000 (+3.0 pts) better |" in body
    assert "| recall | 0.6012 | 0.6679 | -0.06670 (-6.7 pts) **worse** |" in body
    assert "**Worse than the champion on:** recall (-6.7 pts)." in body
    assert "the current champion v1, both scored on the same test rows" in body and "vNone" not in body
    assert "- threshold `roc_auc` >= 0.6: 0.8400, holds" in body
    assert "- passed: max |onnx - sklearn| = 2.00e-07 on 400 test rows" in body
    assert "answer by **" in body and "resolves to **Reject**" in body
    assert "not triggered by a drift event" in body
    assert set(request["params"]) == {"comment"} and request["params"]["comment"]["source"] == "task"
    assert request["options"] == ["Approve", "Reject"] and request["defaults"] == ["Reject"]


def test_an_approval_is_recorded_on_the_version_and_the_promotion_names_the_approver(answered):
    versions, _ = answered["stores"]["approved"]
    run = answered["runs"]["approved"]
    assert run["states"] == {"gate": "success", "approve": "success", "promote": "success"}, run
    approval = json.loads(_tags(versions, "2")["approval"])
    assert approval["decision"] == "approved" and approval["by"] == "alice" and not approval["timed_out"]
    assert approval["comment"] == "recall drop accepted for Q1" and approval["run"].startswith("approval_approved/")
    assert dt.datetime.fromisoformat(approval["at"]).tzinfo is not None
    assert str(versions.registry.champion(versions.name).version) == "2"
    last = versions.registry.promotion_history(versions.name)[-1]
    assert (last["from_version"], last["to_version"], last["by"], last["run"]) == ("1", "2", "alice", RUN_2)


def test_a_rejection_is_recorded_and_the_champion_does_not_move(answered):
    versions, gate = answered["stores"]["rejected"]
    run = answered["runs"]["rejected"]
    assert run["states"] == {"gate": "success", "approve": "success", "promote": "skipped"}, run
    approval = json.loads(_tags(versions, "2")["approval"])
    assert (approval["decision"], approval["by"], approval["comment"]) == ("rejected", "bob", "recall matters more")
    assert str(versions.registry.champion(versions.name).version) == "1"
    assert [r["to_version"] for r in versions.registry.promotion_history(versions.name)] == ["1"]
    # Even a promote task cleared and run again refuses the rejected version, naming who and why.
    with pytest.raises(release.PromotionRejected, match=r"rejected \(by bob, at .*\): recall matters more"):
        release.promote_candidate(versions.registry, gate, by="churn_training/run-2")  # type: ignore[arg-type]
    assert str(versions.registry.champion(versions.name).version) == "1"
