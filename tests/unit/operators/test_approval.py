"""The approval operator's plumbing: what it asks, from which drift, and what it writes back for any answer.

The end-to-end path (Airflow's HITL machinery on a real database) is
``tests/component/operators/test_approval.py``; here the events are shaped as Airflow delivers
them (``HITLDetail.as_resume_event_payload``) and MLflow is a recorder.
"""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace
from typing import Any

import pytest

pytestmark = pytest.mark.unit

GATE = {"promote": True, "reasons": ["all gates passed"], "metric": "roc_auc", "candidate": 0.84, "champion": 0.81,
        "champion_version": "1", "name": "churn_classifier", "version": "2"}  # fmt: skip


class Recorder:
    def __init__(self) -> None:
        self.tags: dict[tuple[str, str], dict[str, str]] = {}

    def tag_version(self, name: str, version: str, tags: dict[str, str]) -> None:
        self.tags.setdefault((name, version), {}).update(tags)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    from airflow_mlops.hooks.mlflow import MlflowHook

    recorder = Recorder()
    monkeypatch.setattr(MlflowHook, "get_conn", lambda self: recorder)
    return recorder


def _context(**extra: Any) -> dict[str, Any]:
    return {"dag": SimpleNamespace(dag_id="churn_training"), "run_id": "asset_triggered__1", "ti": None, **extra}


def test_a_deadline_without_an_answer_is_recorded_as_a_rejection_by_nobody(registry):
    from airflow_mlops.operators.approval import PromotionApprovalOperator

    approve = PromotionApprovalOperator(task_id="approve", gate=GATE, defaults="Reject",
                                        response_timeout=dt.timedelta(hours=1))  # fmt: skip
    at = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)
    event = {"chosen_options": ["Reject"], "params_input": {"comment": ""}, "responded_at": at,
             "responded_by_user": None, "timedout": True}  # fmt: skip
    answer = approve.execute_complete(_context(), event)
    assert answer["chosen_options"] == ["Reject"]
    approval = json.loads(registry.tags[("churn_classifier", "2")]["approval"])
    assert approval == {"decision": "rejected", "by": None, "by_id": None, "at": "2026-12-01T10:00:00+00:00",
                        "comment": None, "timed_out": True, "run": "churn_training/asset_triggered__1"}  # fmt: skip


def test_an_answer_is_written_before_the_operator_acts_on_it(registry, monkeypatch):
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    from airflow_mlops.operators.approval import PromotionApprovalOperator

    order: list[str] = []
    monkeypatch.setattr(ApprovalOperator, "execute_complete",
                        lambda self, context, event: order.append(f"act:{bool(registry.tags)}"))  # fmt: skip
    approve = PromotionApprovalOperator(task_id="approve", gate=GATE)
    event = {"chosen_options": ["Approve"], "params_input": {"comment": "fine"}, "timedout": False,
             "responded_at": dt.datetime.now(dt.UTC), "responded_by_user": {"id": "7", "name": "alice"}}  # fmt: skip
    approve.execute_complete(_context(), event)
    assert order == ["act:True"]
    assert json.loads(registry.tags[("churn_classifier", "2")]["approval"])["by"] == "alice"


def test_the_request_names_the_drift_event_that_triggered_the_run(monkeypatch):
    from airflow.providers.standard.operators.hitl import HITLOperator
    from airflow.sdk import Asset

    from airflow_mlops.operators.approval import PromotionApprovalOperator

    asked: dict[str, Any] = {}
    monkeypatch.setattr(
        HITLOperator, "execute", lambda self, context: asked.update(subject=self.subject, body=self.body)
    )
    drift = Asset(name="mlops.churn.drift", uri="file:///a/churn/events/drift")
    landing = Asset(name="mlops.churn.landing.training", uri="file:///l/churn/training")
    event = SimpleNamespace(extra={"drifted_features": ["plan"], "scores": {"plan": 0.42}, "psi_threshold": 0.2,
                                   "retrain_reasons": ["drift"], "model_version": "1"},
                            timestamp=dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC),
                            source_dag_id="churn_monitoring", source_run_id="scheduled__1")  # fmt: skip
    other = SimpleNamespace(extra={"claim_id": "c1"}, timestamp=None, source_dag_id=None, source_run_id=None)
    approve = PromotionApprovalOperator(task_id="approve", gate=GATE, mlflow_conn_id="no_such_connection")
    approve.execute(_context(triggering_asset_events={drift: [event], landing: [other]}))
    assert asked["subject"] == "Promote churn_classifier v2 to champion?"
    assert ("- drift event of `mlops.churn.drift` at 2026-12-01T09:00:00+00:00 from `churn_monitoring/scheduled__1`, "
            "champion v1: drift") in asked["body"]  # fmt: skip
    assert "  - drifted features: `plan` (PSI 0.420) (threshold 0.200)" in asked["body"]
    assert "c1" not in asked["body"]
    assert "- candidate: the version's description in MLflow" in asked["body"]  # no connection: no link


def test_a_body_given_by_the_dag_author_is_kept(monkeypatch):
    from airflow.providers.standard.operators.hitl import HITLOperator

    from airflow_mlops.operators.approval import PromotionApprovalOperator

    asked: dict[str, Any] = {}
    monkeypatch.setattr(HITLOperator, "execute", lambda self, context: asked.update(body=self.body))
    PromotionApprovalOperator(task_id="approve", gate=GATE, body="Ask Carol first.").execute(_context())
    assert asked["body"] == "Ask Carol first."


def test_the_comment_field_survives_params_of_the_dag():
    """Airflow passes a DAG's params to each task as ``params``; the request's own comment field must stay
    (the training DAG's trigger form has force_retrain and reason, which the request must not show)."""
    from airflow.sdk import DAG, Param

    from airflow_mlops.operators.approval import COMMENT, PromotionApprovalOperator

    with DAG("churn_training", schedule=None, params={"force_retrain": Param(False, type="boolean")}):
        approve = PromotionApprovalOperator(task_id="approve", gate=GATE)
    assert set(approve.serialized_params) == {COMMENT}
