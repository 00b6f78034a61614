"""Validation warnings of the training data, carried to the model version, its card and its gate.

A warning-severity expectation that fails does not stop the run (that is what warning
means), but it must not vanish either: the validate task's report (``report_uri`` in its
result) lists them, and the register and gate tasks read them from there, so XCom carries
the reference only. The version is tagged (``validation_warnings``: how many,
``validation_warning_list``: what, shortened; ``validation_report``: the report), its model
card lists them, the gate states them among its reasons, and with
``promotion.block_on_validation_warnings`` they fail the gate.

Values observed in the data (``partial_unexpected_list``) are data: at most a few of them,
each cut short and escaped, ever reach a tag, a reason or a log line.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow_mlops.core.contracts import ValidationResult
from airflow_mlops.core.io import storage

logger = logging.getLogger(__name__)

MAX_EXAMPLES = 3
MAX_EXAMPLE_CHARS = 40
MAX_TAG_CHARS = 1000  # a version tag's value: well under MLflow's limit, readable in the UI


def _short(value: Any, limit: int = MAX_EXAMPLE_CHARS) -> str:
    """A value for a log line or a tag: escaped (no line break, no control character), cut short."""
    text = str(value).encode("unicode_escape", errors="backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load(validation: ValidationResult | None) -> list[dict[str, Any]]:
    """The warnings of the validate task's result (read from its report); [] without a result.

    A result that counted warnings whose report cannot be read gives one warning saying so,
    rather than none: a missing report must not look like clean data.
    """
    if not validation:
        return []
    count = int(validation.get("warnings") or 0)
    uri = validation.get("report_uri")
    try:
        report = storage.read_json(uri) if uri else {}
    except (OSError, ValueError) as exc:
        logger.warning("cannot read the validation report %s: %s", uri, exc)
        report = {}
    listed = list(report.get("warnings") or [])
    # A landed batch judged on its own (core.data.validation.batches): {batch uri: [warning, ...]}.
    for batch, notes in (report.get("batch_warnings") or {}).items():
        name = str(batch).rstrip("/").rsplit("/", 1)[-1]
        listed += [{"expectation": "landed batch", "column": None, "observed": {"error": f"{name}: {note}"}}
                   for note in notes]  # fmt: skip
    if count and not listed:
        return [{"expectation": "validation report", "column": None, "observed": {"error": f"unreadable: {uri}"}}]
    return listed


def describe(warning: dict[str, Any]) -> str:
    """One warning in a line: the expectation, its column, how much of the data it flagged, examples."""
    column = f" on '{_short(warning['column'])}'" if warning.get("column") else ""
    observed = warning.get("observed") or {}
    parts = []
    if "unexpected_percent" in observed and observed["unexpected_percent"] is not None:
        count = observed.get("unexpected_count")
        rows = f" ({count} rows)" if count is not None else ""
        parts.append(f"{float(observed['unexpected_percent']):.1f}% unexpected{rows}")
    elif "observed_value" in observed:
        parts.append(f"observed {_short(observed['observed_value'])}")
    examples = observed.get("partial_unexpected_list") or []
    if examples:
        parts.append("e.g. " + ", ".join(_short(v) for v in list(examples)[:MAX_EXAMPLES]))
    if observed.get("error"):
        parts.append(_short(observed["error"], 120))
    return f"{_short(warning.get('expectation', '?'), 80)}{column}" + (f": {'; '.join(parts)}" if parts else "")


def version_tags(validation: ValidationResult | None, warnings: list[dict[str, Any]]) -> dict[str, str]:
    """Tags of a model version trained on this data; nothing when the run had no validate result."""
    if validation is None:
        return {}
    listing = " | ".join(describe(w) for w in warnings) or "none"
    if len(listing) > MAX_TAG_CHARS:
        tail = f" ... (see the report: {len(warnings)} in all)"
        listing = listing[: MAX_TAG_CHARS - len(tail)] + tail
    tags = {"validation_warnings": str(len(warnings)), "validation_warning_list": listing}
    if validation.get("report_uri"):
        tags["validation_report"] = str(validation["report_uri"])
    return tags


def gate_reason(warnings: list[dict[str, Any]], blocking: bool) -> str | None:
    """The gate's reason about the warnings, or None without any."""
    if not warnings:
        return None
    what = "; ".join(describe(w) for w in warnings[:5])
    if len(warnings) > 5:
        what += f"; and {len(warnings) - 5} more"
    verdict = (
        "promotion.block_on_validation_warnings is set, so they block promotion"
        if blocking
        else "not blocking (promotion.block_on_validation_warnings is false)"
    )
    return f"validation: {len(warnings)} warning(s) on the training data: {what}; {verdict}"
