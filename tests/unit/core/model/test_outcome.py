"""The DAG run note: one line per outcome, the most telling one chosen, a person's note kept."""

from __future__ import annotations

import pytest

from airflow_mlops.core.model import outcome

pytestmark = pytest.mark.unit

GATE = {"promote": True, "reasons": ["all gates passed"], "metric": "roc_auc", "candidate": 0.8123,
        "champion": 0.8022, "champion_version": "1", "name": "churn_classifier", "version": "2"}  # fmt: skip
REFUSED = {**GATE, "promote": False, "version": "3",
           "reasons": ["roc_auc 0.7010 < threshold 0.75", "no improvement over the champion"]}  # fmt: skip


def test_a_promotion_says_by_how_much_the_candidate_beat_the_champion():
    record = {"from_version": "1", "to_version": "2"}
    assert outcome.promoted(record, GATE)["note"] == "PROMOTED v2 (+0.0101 roc_auc over v1)"
    lower_is_better = {**GATE, "metric": "log_loss", "candidate": 0.41, "champion": 0.45}
    assert outcome.promoted(record, lower_is_better)["note"] == "PROMOTED v2 (-0.0400 log_loss over v1)"


def test_the_first_champion_has_nothing_to_beat():
    first = outcome.promoted({"from_version": None, "to_version": "1"}, {**GATE, "champion": None})
    assert first["note"] == "PROMOTED v1 (first champion; roc_auc 0.8123)"


def test_a_failed_gate_keeps_the_champion_and_says_why():
    assert outcome.kept(REFUSED)["note"] == (
        "KEPT v1: gate failed for v3 (roc_auc 0.7010 < threshold 0.75; no improvement over the champion)"
    )
    assert outcome.kept({**REFUSED, "champion_version": None})["note"].startswith(
        "KEPT no champion: gate failed for v3"
    )


def test_a_rejection_names_the_approver_or_the_timeout():
    assert outcome.rejected("alice", "3") == "REJECTED by alice: v3 not promoted"
    assert outcome.rejected(None, "3") == "REJECTED by default (no answer before the approval timeout): v3 not promoted"


def test_a_skip_and_a_failure_keep_the_summary_line_of_their_message():
    assert outcome.skipped("already trained on this data (churn_classifier v1); use force_retrain")["note"] == (
        "SKIPPED: already trained on this data (churn_classifier v1); use force_retrain"
    )
    message = (
        "data validation failed for pipeline 'churn' (1 of 18 expectations):\n"
        "  - expect_column_values_to_be_between on column 'tenure_months': expected 0..120, observed 130\n"
        "full report: /r/validate/report.json"
    )
    assert outcome.failed("data.validate", message)["note"] == (
        "FAILED at data.validate: data validation failed for pipeline 'churn' (1 of 18 expectations): "
        "expect_column_values_to_be_between on column 'tenure_months': expected 0..120, observed 130"
    )
    assert outcome.failed("model.select", "")["note"] == "FAILED at model.select: see the task log"
    long = outcome.first_line("x" * 1000)
    assert len(long) == outcome.REASON_MAX_CHARS and long.endswith("…")


def _outcomes(*kinds: str) -> list[outcome.Outcome]:
    made = {
        "gate_passed": outcome.gate_passed(GATE, "model.gate"),
        "kept": outcome.kept(REFUSED, "model.gate"),
        "promoted": outcome.promoted({"from_version": "1", "to_version": "2"}, GATE, "model.promote"),
        "skipped": outcome.skipped("not promoting: the gate failed", "model.promote"),
        "failed": outcome.failed("model.deploy", "v2 did not answer: connection refused"),
    }
    return [made[k] for k in kinds]


@pytest.mark.parametrize(
    ("kinds", "note"),
    [
        (("gate_passed", "promoted"), "PROMOTED v2 (+0.0101 roc_auc over v1)"),
        (("kept", "skipped"), "KEPT v1: gate failed for v3 (roc_auc 0.7010 < threshold 0.75; no improvement "
                              "over the champion)"),
        (("gate_passed", "promoted", "failed"), "FAILED at model.deploy: v2 did not answer: connection refused"),
        (("skipped",), "SKIPPED: not promoting: the gate failed"),
        (("gate_passed",), "GATE PASSED v2"),
    ],
)  # fmt: skip
def test_the_run_note_is_the_most_telling_outcome(kinds, note):
    assert outcome.run_note(_outcomes(*kinds)) == note


def test_a_rejected_approval_names_the_candidate_the_gate_passed():
    rejected = [{"chosen_options": ["Reject"], "responded_by": "alice"}]
    assert outcome.run_note(_outcomes("gate_passed"), rejected) == "REJECTED by alice: v2 not promoted"
    approved = [{"chosen_options": ["Approve"], "responded_by": "alice"}]
    assert outcome.run_note(_outcomes("gate_passed", "promoted"), approved).startswith("PROMOTED v2")


def test_failed_tasks_nobody_explained_are_named():
    assert outcome.run_note([], failed_tasks=["data.ingest"]) == "FAILED at data.ingest: see the task log"
    assert outcome.run_note(_outcomes("failed"), failed_tasks=["model.deploy", "model.close_run"]) == (
        "FAILED at model.deploy: v2 did not answer: connection refused (also failed: model.close_run)"
    )
    assert outcome.run_note([]) is None
    assert outcome.run_note([{"kind": "unknown", "note": "x"}, "not a dict"]) is None  # type: ignore[list-item]


def test_merge_puts_the_outcome_first_keeps_a_persons_note_and_replaces_an_old_outcome():
    assert outcome.merge_note(None, "PROMOTED v2") == "PROMOTED v2"
    assert outcome.merge_note("retrain after the Nov outage", "PROMOTED v2") == (
        "PROMOTED v2\n\nretrain after the Nov outage"
    )
    rerun = outcome.merge_note("FAILED at data.validate: x\n\nretrain after the Nov outage", "PROMOTED v2")
    assert rerun == "PROMOTED v2\n\nretrain after the Nov outage"
    assert outcome.merge_note("KEPT v1: y", "PROMOTED v2") == "PROMOTED v2"
    assert len(outcome.merge_note("z" * 5000, "PROMOTED v2")) == outcome.NOTE_MAX_CHARS


def test_a_monitoring_run_names_its_open_incidents_above_its_skipped_drift_check():
    summary = "no prediction logged for 7.0 h (the last at 2026-12-01T01:00:00+00:00; limit 6.0 h)"
    incident = {"check": "silence", "opened_at": "2026-12-01T08:00:00+00:00", "summary": summary}
    alert = outcome.health([incident], [], "health_check")
    assert alert is not None and alert["note"] == (
        "ALERT: silence since 2026-12-01T08:00:00+00:00 (no prediction logged for 7.0 h "
        "(the last at 2026-12-01T01:00:00+00:00; limit 6.0 h))"
    )
    skipped = outcome.skipped("no prediction logs for pipeline 'churn' to monitor", "drift_check")
    assert outcome.run_note([skipped, alert]) == alert["note"]
    recovered = outcome.health([], ["silence"], "health_check")
    assert recovered is not None and outcome.run_note([skipped, recovered]) == "RECOVERED: silence"
    assert outcome.health([], [], "health_check") is None
    assert outcome.merge_note(alert["note"], "RECOVERED: silence") == "RECOVERED: silence"  # the old line replaced
