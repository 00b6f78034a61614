"""The approval request's evidence: every metric side by side, what the gate checked, why the run, by when."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from airflow_mlops.core.model.evidence import approval_request, metrics_table, significant, version_page_url

pytestmark = pytest.mark.unit


def _gate(**verdict: Any) -> dict[str, Any]:
    gate: dict[str, Any] = {
        "promote": True, "metric": "roc_auc", "candidate": 0.84, "champion": 0.81, "champion_version": "1",
        "name": "churn_classifier", "version": "2",
        "reasons": ["all gates passed",
                    "roc_auc: candidate 0.8400 vs champion 0.8100 (improvement +0.0300, required > 0.0)"],
        "verdict": {
            "promote": True, "metric": "roc_auc", "higher_is_better": True, "candidate": 0.84, "champion": 0.81,
            "champion_version": "1", "min_improvement": 0.0, "improvement": 0.03,
            "thresholds": {"roc_auc": {"bound": 0.6, "value": 0.84, "passed": True, "relation": ">="}},
            "metrics": {"candidate": {"roc_auc": 0.84, "recall": 0.6012, "log_loss": 0.41},
                        "champion": {"roc_auc": 0.81, "recall": 0.6679, "log_loss": 0.45}},
            "champion_error": None, "test_rows": 1200, "test_fingerprint": "0123456789abcdef0123",
            "onnx": {"policy": "required", "exported": True, "error": None, "passed": True, "max_abs_diff": 2e-7,
                     "rows": 1200, "tolerance": 1e-4, "labels_agree": 1.0},
            "nfr": {}, "at": "2026-12-01T10:00:00+00:00",
        },
    }  # fmt: skip
    gate["verdict"].update(verdict)
    return gate


def test_every_metric_is_side_by_side_with_the_gate_metric_first_and_a_drop_elsewhere_called_out():
    body = approval_request(_gate())
    rows = [line for line in body.splitlines() if line.startswith("| ")]
    assert rows == [
        "| metric | candidate v2 | champion v1 | change |",
        "| **roc_auc** (gate) | 0.8400 | 0.8100 | +0.03000 (+3.0 pts) better |",
        "| log_loss (lower is better) | 0.4100 | 0.4500 | -0.04000 better |",
        "| recall | 0.6012 | 0.6679 | -0.06670 (-6.7 pts) **worse** |",
    ]
    assert "**Worse than the champion on:** recall (-6.7 pts)." in body
    assert "both scored on the same 1,200 test rows (test split `0123456789abcdef`)" in body


def test_a_higher_loss_is_worse_and_a_tie_is_the_same():
    gate = _gate()
    gate["verdict"]["metrics"] = {"candidate": {"roc_auc": 0.84, "log_loss": 0.5, "recall": 0.6},
                                  "champion": {"roc_auc": 0.81, "log_loss": 0.45, "recall": 0.6}}  # fmt: skip
    table, worse = metrics_table(gate, gate["verdict"])  # type: ignore[arg-type]
    assert "| log_loss (lower is better) | 0.5000 | 0.4500 | +0.05000 **worse** |" in table
    assert "| recall | 0.6000 | 0.6000 | 0 same |" in table
    assert worse == ["log_loss (+0.05)"]


def test_without_a_champion_it_says_so_instead_of_v_none():
    gate = _gate(champion=None, champion_version=None, improvement=None)
    gate.update(champion=None, champion_version=None)
    gate["verdict"]["metrics"]["champion"] = None
    body = approval_request(gate)  # type: ignore[arg-type]
    assert "**There is no champion yet**: v2 would be the first." in body
    assert "None" not in body and "vNone" not in body
    assert "| **roc_auc** (gate) | 0.8400 | - | - |" in body
    assert "- champion:" not in body  # no second model card to link


def test_a_champion_that_could_not_be_evaluated_is_named_with_the_reason():
    gate = _gate(champion_error="KeyError: 'plan'")
    gate["verdict"]["metrics"]["champion"] = None
    body = approval_request(gate)  # type: ignore[arg-type]
    assert "The current champion v1 **could not be evaluated** on this test split (KeyError: 'plan')" in body


def test_the_gate_the_parity_and_the_missing_latency_figures_are_stated():
    body = approval_request(_gate())
    assert "- primary metric `roc_auc` (higher is better): the candidate must beat the champion by more than 0" in body
    assert "- threshold `roc_auc` >= 0.6: 0.8400, holds" in body
    assert "- roc_auc: candidate 0.8400 vs champion 0.8100 (improvement +0.0300, required > 0.0)" in body
    assert (
        "- passed: max |onnx - sklearn| = 2.00e-07 on 1200 test rows (tolerance 0.000100), labels agree 100.00%" in body
    )
    assert "- not measured: the gate had no latency or size figures of this version" in body
    measured = approval_request(_gate(nfr={"p99_latency_ms": 3.21, "onnx_bytes": 123456.0}))  # type: ignore[arg-type]
    assert "- onnx_bytes: 123,500" in measured and "- p99_latency_ms: 3.210" in measured


def test_a_failed_or_missing_onnx_twin_is_said():
    failed = _gate(onnx={"policy": "optional", "exported": True, "error": None, "passed": False, "max_abs_diff": 0.3,
                         "rows": 10, "tolerance": 1e-4, "labels_agree": 0.8})  # fmt: skip
    assert "- **FAILED**: max |onnx - sklearn| = 0.300 on 10 test rows" in approval_request(failed)  # type: ignore[arg-type]
    off = _gate(onnx={"policy": "off", "exported": False, "error": None, "passed": None, "max_abs_diff": None,
                      "rows": None, "tolerance": None, "labels_agree": None})  # fmt: skip
    assert "not exported (`packaging.onnx: off`)" in approval_request(off)  # type: ignore[arg-type]


def test_the_drift_that_triggered_the_run_is_shown_with_its_features_and_decay():
    drift = [{
        "asset": "mlops.churn.drift", "at": "2026-12-01T09:00:00+00:00", "source": "churn_monitoring/scheduled__1",
        "extra": {"drifted_features": [f"f{i}" for i in range(7)], "scores": {"f0": 0.31, "f1": 0.25},
                  "psi_threshold": 0.2, "retrain_reasons": ["drift", "performance_decay"], "model_version": "1",
                  "performance": {"decayed": True, "decision": "roc_auc 0.4100 on 3000 labeled predictions ..."},
                  "html_report_uri": "/r/drift.html"},
    }]  # fmt: skip
    body = approval_request(_gate(), drift=drift)  # type: ignore[arg-type]
    assert ("- drift event of `mlops.churn.drift` at 2026-12-01T09:00:00+00:00 from `churn_monitoring/scheduled__1`, "
            "champion v1: drift, performance_decay") in body  # fmt: skip
    assert "  - drifted features: `f0` (PSI 0.310), `f1` (PSI 0.250), `f2` (PSI -)" in body
    assert "and 2 more (threshold 0.200)" in body
    assert "  - performance decay: roc_auc 0.4100 on 3000 labeled predictions ..." in body
    assert "  - report: `/r/drift.html`" in body
    assert "not triggered by a drift event" in approval_request(_gate())


def test_the_deadline_and_what_happens_without_an_answer():
    assert "- answer by **2026-12-02 10:00 UTC**; without an answer the request resolves to **Reject**" in (
        approval_request(_gate(), deadline="2026-12-02 10:00 UTC")  # type: ignore[arg-type]
    )
    assert "fails (nothing is promoted)" in approval_request(_gate(), deadline="x", default_on_timeout=None)  # type: ignore[arg-type]
    assert "- none: the request waits for an answer" in approval_request(_gate())  # type: ignore[arg-type]


def test_a_result_from_before_the_verdict_still_shows_the_gate_metric():
    gate = _gate()
    del gate["verdict"]
    body = approval_request(gate)  # type: ignore[arg-type]
    assert "| **roc_auc** (gate) | 0.8400 | 0.8100 | +0.03000 (+3.0 pts) better |" in body
    assert "both scored on the same test rows:" in body


def test_cells_cannot_break_the_table():
    gate = copy.deepcopy(_gate())
    gate["verdict"]["metrics"]["candidate"]["a|b\nc"] = 1.0
    assert "| a\\|b c | 1.000 | - | - |" in approval_request(gate)  # type: ignore[arg-type]


def test_the_model_card_link_is_the_mlflow_version_page_without_credentials():
    assert version_page_url("https://u:secret@mlflow.example:5443/base/", "churn model", "2") == (
        "https://mlflow.example:5443/base/#/models/churn%20model/versions/2"
    )
    assert version_page_url("sqlite:////tmp/mlflow.db", "m", "1") is None
    assert version_page_url(None, "m", "1") is None
    body = approval_request(_gate(), model_url="http://m/#/models/c/versions/2", champion_url="http://m/#/c/1")  # type: ignore[arg-type]
    assert "- candidate: [v2 in MLflow](http://m/#/models/c/versions/2)" in body
    assert "- champion: [v1 in MLflow](http://m/#/c/1)" in body


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.81, "0.8100"), (0.123456, "0.1235"), (12345.6, "12,350"), (1200.0, "1200"), (2e-7, "2.000e-07"),
     (0.0, "0"), (None, "-"), (float("nan"), "nan")],
)  # fmt: skip
def test_numbers_have_four_significant_digits(value, text):
    assert significant(value) == text
