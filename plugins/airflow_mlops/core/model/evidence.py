"""The evidence a reviewer reads before approving a promotion: one Markdown text, built from data.

The approval request (``operators.approval``) shows it in Airflow's "Required actions": the
candidate against the champion on every test metric of the same test rows (the gate's primary
metric marked, each change signed so a drop elsewhere is visible), the gate's reasons and
thresholds, the ONNX parity, non-functional figures when something measured them, the drift
that triggered the retraining, the deadline and the links to the model cards. Pure: it takes
the gate's result (``GateResult`` with its ``verdict``) and what the operator read from
Airflow's context, and returns text; a result from before the verdict existed still renders.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from airflow_mlops.core.contracts import DriftEvent, GateResult, GateVerdict
from airflow_mlops.spec import LOWER_IS_BETTER

# Metrics on a 0..1 scale: their change is also shown in percentage points.
PROPORTIONS = {"accuracy", "precision", "recall", "f1", "roc_auc"}
MAX_FEATURES_SHOWN = 5


class DriftTrigger(TypedDict):
    """A drift Asset event that triggered the run (from ``triggering_asset_events``)."""

    asset: str
    at: str | None
    source: str | None  # "<dag_id>/<run_id>" of the monitoring run that emitted it
    extra: DriftEvent


def significant(value: float | None, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits, trailing zeros kept (0.8100); large values
    without an exponent (12,350)."""
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    text = f"{value:#.{digits}g}".rstrip(".")
    if "e+" in text and abs(value) < 1e15:
        exponent = math.floor(math.log10(abs(value)))
        return f"{round(value, digits - 1 - exponent):,.0f}"
    return text


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _change(metric: str, candidate: float | None, champion: float | None) -> tuple[str, float | None]:
    """The change cell and the signed gain (> 0: better, following the metric's direction)."""
    if candidate is None or champion is None or not (math.isfinite(candidate) and math.isfinite(champion)):
        return "-", None
    diff = candidate - champion
    gain = -diff if metric in LOWER_IS_BETTER else diff
    text = "0" if diff == 0 else ("+" if diff > 0 else "") + significant(diff)
    if metric in PROPORTIONS and diff != 0:
        text += f" ({diff * 100:+.1f} pts)"
    word = "same" if gain == 0 else ("better" if gain > 0 else "**worse**")
    return f"{text} {word}", gain


def _metrics(gate: GateResult, verdict: GateVerdict | None) -> tuple[dict[str, float], dict[str, float] | None]:
    if verdict is not None:
        return dict(verdict["metrics"].get("candidate") or {}), verdict["metrics"].get("champion")
    candidate = {gate["metric"]: gate["candidate"]} if gate.get("candidate") is not None else {}
    champion = {gate["metric"]: gate["champion"]} if gate.get("champion") is not None else None
    return candidate, champion  # type: ignore[return-value]


def metrics_table(gate: GateResult, verdict: GateVerdict | None = None) -> tuple[list[str], list[str]]:
    """The metric | candidate | champion | change table, and the metrics on which the candidate is worse."""
    candidate, champion = _metrics(gate, verdict)
    version, champion_version = gate["version"], gate.get("champion_version")
    primary = gate["metric"]
    head = f"champion v{champion_version}" if champion_version and champion is not None else "champion"
    lines = [f"| metric | candidate v{_cell(version)} | {_cell(head)} | change |", "|---|---|---|---|"]
    worse: list[str] = []
    for metric in sorted(set(candidate) | set(champion or {}), key=lambda m: (m != primary, m)):
        value, old = candidate.get(metric), (champion or {}).get(metric)
        change, gain = _change(metric, value, old)
        if gain is not None and gain < 0:
            delta = value - old  # type: ignore[operator]
            worse.append(f"{metric} ({delta * 100:+.1f} pts)" if metric in PROPORTIONS else f"{metric} ({delta:+.4g})")
        name = f"**{_cell(metric)}** (gate)" if metric == primary else _cell(metric)
        direction = " (lower is better)" if metric in LOWER_IS_BETTER else ""
        lines.append(f"| {name}{direction} | {significant(value)} | {significant(old)} | {change} |")
    return lines, worse


def _comparison(gate: GateResult, verdict: GateVerdict | None) -> list[str]:
    champion_version = gate.get("champion_version")
    error = verdict.get("champion_error") if verdict else None
    rows = verdict.get("test_rows") if verdict else None
    fingerprint = verdict.get("test_fingerprint") if verdict else None
    where = f"the same {rows:,} test rows" if rows else "the same test rows"
    if fingerprint:
        where += f" (test split `{_cell(fingerprint)[:16]}`)"
    if champion_version is None:
        return [f"**There is no champion yet**: v{gate['version']} would be the first. Its metrics on {where}:"]
    if error:
        return [f"The current champion v{champion_version} **could not be evaluated** on this test split "
                f"({_cell(error)[:300]}). The candidate's metrics on {where}:"]  # fmt: skip
    return [f"Candidate v{gate['version']} and the current champion v{champion_version}, both scored on {where}:"]


def _rule(verdict: GateVerdict | None) -> list[str]:
    if verdict is None:
        return []
    relation = "higher is better" if verdict["higher_is_better"] else "lower is better"
    margin = verdict["min_improvement"]
    lines = [
        f"- primary metric `{verdict['metric']}` ({relation}): the candidate must beat the champion by "
        + (f">= {margin:g}" if margin else "more than 0 (a tie keeps the champion)")
        + (f"; it does by {significant(verdict['improvement'])}" if verdict.get("improvement") is not None else "")
    ]
    for metric, check in verdict["thresholds"].items():
        state = "holds" if check["passed"] else "**fails**"
        lines.append(f"- threshold `{metric}` {check['relation']} {check['bound']:g}: "
                     f"{significant(check['value'])}, {state}")  # fmt: skip
    return lines


def _onnx(verdict: GateVerdict | None) -> list[str]:
    onnx = verdict.get("onnx") if verdict else None
    if onnx is None:
        return ["- not known to the gate (no package result)"]
    if onnx["policy"] == "off":
        return ["- not exported (`packaging.onnx: off`): the serving app cannot serve this version"]
    if onnx.get("error"):
        return [f"- export failed ({_cell(onnx['error'])[:300]}); policy `{onnx['policy']}`"]
    if onnx.get("passed") is None:
        return [f"- no graph was built; policy `{onnx['policy']}`"]
    verdict_text = "passed" if onnx["passed"] else "**FAILED**"
    agree = onnx.get("labels_agree")
    return [
        f"- {verdict_text}: max |onnx - sklearn| = {significant(onnx.get('max_abs_diff'), 3)} on "
        f"{onnx.get('rows')} test rows (tolerance {significant(onnx.get('tolerance'), 3)})"
        + (f", labels agree {agree:.2%}" if agree is not None else "")
    ]


def _nfr(verdict: GateVerdict | None) -> list[str]:
    figures = verdict.get("nfr") if verdict else None
    if not figures:
        return ["- not measured: the gate had no latency or size figures of this version (no package task result)"]
    return [f"- {_cell(name)}: {significant(value)}" for name, value in sorted(figures.items())]


def _drift(triggers: Sequence[DriftTrigger]) -> list[str]:
    if not triggers:
        return ["- not triggered by a drift event (a calendar, data-arrival or manual run)"]
    lines = []
    for trigger in triggers:
        extra: Mapping[str, Any] = trigger.get("extra") or {}
        reasons = ", ".join(extra.get("retrain_reasons") or []) or "drift"
        lines.append(f"- drift event of `{_cell(trigger['asset'])}` at {trigger.get('at') or '?'}"
                     + (f" from `{_cell(trigger['source'])}`" if trigger.get("source") else "")
                     + f", champion v{extra.get('model_version', '?')}: {reasons}")  # fmt: skip
        scores: Mapping[str, float] = extra.get("scores") or {}
        drifted = list(extra.get("drifted_features") or [])
        if drifted:
            first = drifted[:MAX_FEATURES_SHOWN]
            shown = ", ".join(f"`{_cell(f)}` (PSI {significant(scores.get(f), 3)})" for f in first)
            more = f" and {len(drifted) - MAX_FEATURES_SHOWN} more" if len(drifted) > MAX_FEATURES_SHOWN else ""
            threshold = extra.get("psi_threshold")
            lines.append(f"  - drifted features: {shown}{more}"
                         + (f" (threshold {significant(threshold, 3)})" if threshold is not None else ""))  # fmt: skip
        performance: Mapping[str, Any] = extra.get("performance") or {}
        if performance.get("decayed"):
            lines.append(f"  - performance decay: {_cell(performance.get('decision') or '')[:300]}")
        if extra.get("html_report_uri") or extra.get("report_uri"):
            lines.append(f"  - report: `{_cell(extra.get('html_report_uri') or extra.get('report_uri'))}`")
    return lines


def approval_request(
    gate: GateResult,
    *,
    drift: Sequence[DriftTrigger] = (),
    deadline: str | None = None,
    default_on_timeout: str | None = "Reject",
    model_url: str | None = None,
    champion_url: str | None = None,
) -> str:
    """The Markdown body of the approval request for the gated candidate ``gate``.

    ``drift``: the drift events that triggered the run; ``deadline``: when the request
    resolves without an answer (ISO time, None: it waits), to ``default_on_timeout``;
    ``model_url`` / ``champion_url``: the MLflow pages of the candidate and the champion.
    """
    verdict = gate.get("verdict")
    table, worse = metrics_table(gate, verdict)
    lines = [f"### {_cell(gate['name'])} v{gate['version']}: the gate passed", "", *_comparison(gate, verdict), ""]
    lines += [*table, ""]
    if worse:
        lines += [f"**Worse than the champion on:** {', '.join(worse)}.", ""]
    lines += ["#### Gate", "", *_rule(verdict), *(f"- {_cell(r)}" for r in gate.get("reasons", [])), ""]
    if gate.get("validation_warnings"):
        lines += ["Validation warnings of the training data:", ""]
        lines += [f"- {_cell(w)}" for w in gate.get("validation_warnings", [])[:10]] + [""]
    lines += ["#### ONNX parity", "", *_onnx(verdict), ""]
    lines += ["#### Latency and size", "", *_nfr(verdict), ""]
    lines += ["#### Why this run", "", *_drift(drift), ""]
    lines += ["#### Deadline", ""]
    if deadline:
        outcome = f"resolves to **{default_on_timeout}**" if default_on_timeout else "fails (nothing is promoted)"
        lines.append(f"- answer by **{deadline}**; without an answer the request {outcome}")
    else:
        lines.append("- none: the request waits for an answer")
    lines += ["", "#### Model cards", ""]
    card = f"[v{gate['version']} in MLflow]({model_url})" if model_url else "the version's description in MLflow"
    lines.append(f"- candidate: {card}")
    if gate.get("champion_version"):
        old = f"[v{gate['champion_version']} in MLflow]({champion_url})" if champion_url else "its MLflow description"
        lines.append(f"- champion: {old}")
    lines += ["", "Approve to make it the champion; reject to keep the current one. A comment is recorded with "
              "the answer on the version in MLflow (tag `approval`)."]  # fmt: skip
    return "\n".join(lines) + "\n"


def version_page_url(tracking_uri: str | None, name: str, version: str) -> str | None:
    """The MLflow UI page of a model version, when the tracking URI is a web server; never with credentials."""
    from urllib.parse import quote, urlsplit, urlunsplit

    if not tracking_uri:
        return None
    parts = urlsplit(tracking_uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return f"{base}/#/models/{quote(name, safe='')}/versions/{quote(str(version), safe='')}"
