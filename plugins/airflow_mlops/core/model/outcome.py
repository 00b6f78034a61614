"""What a training run ended with, in one line a person reads: the DAG run's note.

The deciding tasks record an ``Outcome`` (XCom key ``OUTCOME_KEY``): the gate (passed, or the
champion kept), the promotion, a skip, a failure with its reason. When the run ends,
``run_note`` picks the one that tells what happened, in this order: a failure, a rejection
by the approver, a promotion, a kept champion, a skip, a passed gate. Examples::

    PROMOTED v2 (+0.0101 roc_auc over v1)
    KEPT v1: gate failed for v3 (roc_auc 0.7010 < threshold 0.75)
    REJECTED by alice: v3 not promoted
    SKIPPED: already trained on this data (churn_classifier v1); use force_retrain
    FAILED at data.validate: data validation failed for pipeline 'churn' (2 of 18 expectations)

Pure (stdlib only): the scheduler's listener (``notifiers.run_notes``) and the tasks both
call it, and the unit tests pin every line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, TypedDict

OUTCOME_KEY = "mlops_outcome"  # the XCom key of a task's Outcome
NOTE_MAX_CHARS = 1000  # Airflow's dag_run_note.content is a String(1000)
REASON_MAX_CHARS = 300  # one reason in a note: the first line of an error, cut here
PREFIXES = ("PROMOTED", "KEPT", "REJECTED", "SKIPPED", "FAILED", "GATE PASSED", "ALERT", "RECOVERED")

Kind = Literal["failed", "promoted", "kept", "skipped", "gate_passed", "alert", "recovered"]
# Which outcome tells the story when a run recorded several (a failed deploy after a promotion;
# a monitoring run's open health incidents before its skipped drift check).
_RANK: dict[str, int] = {"failed": 0, "rejected": 1, "alert": 2, "promoted": 3, "kept": 4, "recovered": 5,
                         "skipped": 6, "gate_passed": 7}  # fmt: skip


class Outcome(TypedDict, total=False):
    """What one task decided (XCom ``OUTCOME_KEY``); ``note`` is its line of the run note."""

    kind: Kind
    task: str
    note: str
    version: str  # the candidate version (gate, promotion)


def first_line(text: str, limit: int = REASON_MAX_CHARS) -> str:
    """The summary of a message: its first non-empty line (with the next one when it ends in
    ``:``, as "failed (2 of 18 expectations):" does before its list), at most ``limit`` characters."""
    lines = [part.strip() for part in str(text).splitlines() if part.strip()]
    line = lines[0] if lines else ""
    if line.endswith(":") and len(lines) > 1:
        line = f"{line} {lines[1].lstrip('- ')}"
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _version(value: Any) -> str:
    return "none" if value in (None, "", "None") else f"v{value}"


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else str(value)


def promoted(record: Mapping[str, Any], gate: Mapping[str, Any], task: str = "") -> Outcome:
    """The champion moved to the candidate: by how much it beat the one it replaced."""
    to, before = record.get("to_version"), record.get("from_version")
    metric, candidate, champion = gate.get("metric"), gate.get("candidate"), gate.get("champion")
    if before in (None, "", "None"):
        detail = f"first champion; {metric} {_number(candidate)}" if metric else "first champion"
    elif isinstance(candidate, int | float) and isinstance(champion, int | float):
        detail = f"{candidate - champion:+.4f} {metric} over v{before}"
    else:
        detail = f"replaces v{before}"
    return {"kind": "promoted", "task": task, "version": str(to), "note": f"PROMOTED v{to} ({detail})"}


def kept(gate: Mapping[str, Any], task: str = "") -> Outcome:
    """The gate refused the candidate: the champion stays, and why."""
    reasons = "; ".join(str(r) for r in gate.get("reasons") or []) or "no reason given"
    champion = gate.get("champion_version")
    keeps = f"KEPT {_version(champion)}" if champion not in (None, "", "None") else "KEPT no champion"
    note = f"{keeps}: gate failed for v{gate.get('version')} ({first_line(reasons)})"
    return {"kind": "kept", "task": task, "version": str(gate.get("version")), "note": note}


def gate_passed(gate: Mapping[str, Any], task: str = "") -> Outcome:
    """The gate passed (the promotion, or an approver, decides next)."""
    version = str(gate.get("version"))
    return {"kind": "gate_passed", "task": task, "version": version, "note": f"GATE PASSED v{version}"}


def skipped(reason: str, task: str = "") -> Outcome:
    """Nothing to do in this run, and why (a skip is not a failure)."""
    return {"kind": "skipped", "task": task, "note": f"SKIPPED: {first_line(reason)}"}


def health(open_incidents: Sequence[Mapping[str, Any]], cleared: Sequence[str], task: str = "") -> Outcome | None:
    """The monitoring run's health: the open incidents (what, since when), else what recovered; None
    when all is well and nothing changed.

    ``ALERT: silence since 2026-12-01T08:00:00+00:00 (no prediction logged for 6.2 h ...)``
    """
    if open_incidents:
        parts = [f"{i.get('check')} since {i.get('opened_at')} ({first_line(str(i.get('summary', '')), 160)})"
                 for i in open_incidents]  # fmt: skip
        return {"kind": "alert", "task": task, "note": "ALERT: " + "; ".join(parts)}
    if cleared:
        return {"kind": "recovered", "task": task, "note": f"RECOVERED: {', '.join(cleared)}"}
    return None


def failed(task: str, reason: str) -> Outcome:
    """The run failed at ``task``: the summary line of its error."""
    return {"kind": "failed", "task": task, "note": f"FAILED at {task}: {first_line(reason) or 'see the task log'}"}


def rejected(by: str | None, version: str | None) -> str:
    """The approver said no (``by`` None: nobody answered in time and the default, Reject, applied)."""
    who = f"by {by}" if by else "by default (no answer before the approval timeout)"
    return f"REJECTED {who}: {_version(version)} not promoted"


class Approval(TypedDict, total=False):
    """A human-in-the-loop answer of the run (Airflow's ``ApprovalOperator``)."""

    chosen_options: list[str]
    responded_by: str | None  # the user's name


def run_note(
    outcomes: Iterable[Mapping[str, Any]],
    approvals: Sequence[Mapping[str, Any]] = (),
    failed_tasks: Sequence[str] = (),
) -> str | None:
    """The note of a finished run: its most telling outcome (see the module docstring).

    ``outcomes`` in the order they were recorded; ``approvals`` the run's answered approval
    requests (``Approval``); ``failed_tasks`` the ids of its failed tasks, for a failure no task recorded (a
    killed worker, a task of another kind). None when nothing was recorded and nothing failed.
    """
    recorded = [o for o in outcomes if isinstance(o, Mapping) and o.get("kind") in _RANK and o.get("note")]
    failures = [o for o in recorded if o["kind"] == "failed"]
    unexplained = [t for t in failed_tasks if t not in {str(o.get("task")) for o in failures}]
    if failures:
        note = str(failures[0]["note"])
        return note + (f" (also failed: {', '.join(unexplained)})" if unexplained else "")
    if unexplained:
        return f"FAILED at {', '.join(unexplained)}: see the task log"
    rejection = next((a for a in approvals if "Reject" in (a.get("chosen_options") or [])), None)
    if rejection is not None and not any(o["kind"] == "promoted" for o in recorded):
        candidate = next((o.get("version") for o in reversed(recorded) if o.get("version")), None)
        return rejected(rejection.get("responded_by"), candidate)
    if not recorded:
        return None
    return str(min(recorded, key=lambda o: _RANK[o["kind"]])["note"])


def merge_note(existing: str | None, note: str) -> str:
    """The run's note with ``note`` at the top: a note a person wrote stays below it.

    A previous outcome line (a cleared and re-run run) is replaced, not stacked.
    """
    kept_text = (existing or "").strip()
    if kept_text.startswith(PREFIXES):
        _, _, kept_text = kept_text.partition("\n\n")
    merged = f"{note}\n\n{kept_text.strip()}" if kept_text.strip() else note
    return merged if len(merged) <= NOTE_MAX_CHARS else merged[: NOTE_MAX_CHARS - 1] + "…"
