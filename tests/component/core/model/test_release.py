"""What the gate and the approval leave on a version, readable later, against a real MLflow registry.

The ``gate_verdict`` tag holds every number the gate compared (the UI shows it for versions
that were not promoted); the ``approval`` tag holds a person's answer, which the promotion
obeys: a rejected version is never promoted, an approved one is promoted in the approver's name.
"""

from __future__ import annotations

import json

import pytest

from airflow_mlops.core.model import release
from airflow_mlops.core.registry import promotion
from tests.support.model_versions import SERVABLE, Versions

pytestmark = pytest.mark.component

RUN_1, RUN_2 = "churn_training/run-1", "churn_training/run-2"


@pytest.fixture
def store(tmp_path, spec):
    versions = Versions(f"sqlite:///{tmp_path}/mlflow.db", spec.registered_model_name, tmp_path)
    promotion.promote(versions.registry, versions.name, versions.add(SERVABLE, run=RUN_1), "gate passed", RUN_1)
    versions.add(SERVABLE, run=RUN_2)
    return versions


def _evaluation(candidate: dict, champion: dict | None = None) -> dict:
    return {"candidate": candidate, "champion": champion, "champion_error": None,
            "champion_version": "1" if champion is not None else None, "slices": {}, "importance": {}}  # fmt: skip


def _verdict_tag(store: Versions, version: str = "2") -> dict:
    return json.loads(store.registry.client.get_model_version(store.name, version).tags["gate_verdict"])


def test_a_failed_gate_leaves_every_number_it_compared_on_the_version(store, spec):
    evaluation = _evaluation({"roc_auc": 0.58, "recall": 0.7, "log_loss": float("nan")},
                             {"roc_auc": 0.81, "recall": 0.66, "log_loss": 0.45})  # fmt: skip
    gate = release.gate_candidate(spec, store.registry, {"name": store.name, "version": "2"}, evaluation)
    assert not gate["promote"]
    verdict = _verdict_tag(store)
    assert verdict["promote"] is False and verdict["metric"] == "roc_auc" and verdict["higher_is_better"] is True
    assert (verdict["candidate"], verdict["champion"], verdict["champion_version"]) == (0.58, 0.81, "1")
    assert verdict["improvement"] == pytest.approx(-0.23)
    assert verdict["thresholds"] == {"roc_auc": {"bound": 0.6, "value": 0.58, "passed": False, "relation": ">="}}
    assert verdict["metrics"]["champion"] == {"roc_auc": 0.81, "recall": 0.66, "log_loss": 0.45}
    assert verdict["metrics"]["candidate"]["log_loss"] is None  # NaN becomes null: strict JSON for a browser
    assert verdict["onnx"] is None and verdict["nfr"] == {}
    tags = store.registry.client.get_model_version(store.name, "2").tags
    assert tags["gate"] == "failed" and "roc_auc=0.5800 fails the threshold >= 0.6" in tags["gate_reasons"]
    assert gate["verdict"]["thresholds"] == verdict["thresholds"]  # the same document travels in XCom


def test_the_verdict_tag_stays_under_mlflows_limit_whatever_the_metrics(store, spec):
    many = {f"slice_metric_{i:03d}_with_a_long_name": 0.5 + i / 1000 for i in range(300)}
    evaluation = _evaluation({"roc_auc": 0.9, **many}, {"roc_auc": 0.8, **many})
    gate = release.gate_candidate(spec, store.registry, {"name": store.name, "version": "2"}, evaluation)
    raw = store.registry.client.get_model_version(store.name, "2").tags["gate_verdict"]
    assert len(raw) <= release.TAG_MAX_CHARS
    verdict = json.loads(raw)
    assert verdict["truncated"] == ["metrics"] and verdict["metrics"] is None
    assert (verdict["candidate"], verdict["champion"], verdict["promote"]) == (0.9, 0.8, gate["promote"])


def test_an_approved_version_is_promoted_in_the_approvers_name(store):
    approval = release.approval_record("approved", {"id": "u-7", "name": "alice"}, "2026-12-01T10:00:00+00:00",
                                       "  looks right  ", run="churn_training/run-2")  # fmt: skip
    release.record_approval(store.registry, store.name, "2", approval)
    gate = {"promote": True, "name": store.name, "version": "2", "champion_version": "1", "reasons": ["ok"]}
    record = release.promote_candidate(store.registry, gate, by="churn_training/run-2")  # type: ignore[arg-type]
    assert (record["to_version"], record["by"], record["run"]) == ("2", "alice", RUN_2)
    tag = json.loads(store.registry.client.get_model_version(store.name, "2").tags["approval"])
    assert tag == {"decision": "approved", "by": "alice", "by_id": "u-7", "at": "2026-12-01T10:00:00+00:00",
                   "comment": "looks right", "timed_out": False, "run": "churn_training/run-2"}  # fmt: skip


@pytest.mark.parametrize(
    ("user", "timed_out", "said"),
    [({"id": "u-8", "name": "bob"}, False, r"rejected \(by bob, at 2026-12-01T10:00:00\+00:00\): too risky"),
     (None, True, r"rejected \(nobody answered before the deadline, at 2026-12-01T10:00:00\+00:00\)")],
)  # fmt: skip
def test_a_rejected_version_is_never_promoted(store, user, timed_out, said):
    comment = "too risky" if user else None
    approval = release.approval_record("rejected", user, "2026-12-01T10:00:00+00:00", comment, run=None,
                                       timed_out=timed_out)  # fmt: skip
    release.record_approval(store.registry, store.name, "2", approval)
    gate = {"promote": True, "name": store.name, "version": "2", "champion_version": "1", "reasons": ["ok"]}
    with pytest.raises(release.PromotionRejected, match=said):
        release.promote_candidate(store.registry, gate, by="churn_training/run-2")  # type: ignore[arg-type]
    assert str(store.registry.champion(store.name).version) == "1"
    assert [r["to_version"] for r in store.registry.promotion_history(store.name)] == ["1"]


def test_an_approval_decision_is_approved_or_rejected_and_a_long_comment_is_cut():
    with pytest.raises(ValueError, match="'approved' or 'rejected', not 'maybe'"):
        release.approval_record("maybe", None, "t", None, run=None)
    long = release.approval_record("rejected", {"id": "1", "name": ""}, "t", "x" * 9000, run=None)
    assert long["by"] == "1" and len(long["comment"] or "") == 2000
    assert release.approval_record("approved", None, "t", "   ", run=None)["comment"] is None
