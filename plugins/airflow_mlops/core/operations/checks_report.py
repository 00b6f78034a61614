"""The monitoring report's sections for the slices on delayed labels and the estimate without labels.

HTML fragments (escaped, ASCII markup) that ``drift.report.render_drift_html`` places after the
Performance section; each states its rule with the spec's numbers, so the page says why.
"""

from __future__ import annotations

import html
from typing import Any


def _number(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def slices_section(check: dict[str, Any] | None) -> str:
    """One row per slice: labeled rows, its metric now and on the test split, the drop, the decision."""
    if check is None:
        return ""
    verdict = "SLICE DECAY" if check["decayed"] else "no slice decay"
    action = "requests retraining" if check["retrain"] else "is reported as an alert (retrain_on_slice_decay: false)"
    rows = "".join(
        f"<tr class='{'drifted' if row['decayed'] else ''}'><td>{html.escape(row['column'])}</td>"
        f"<td>{html.escape(row['value'])}</td><td>{row['rows']:,}</td><td>{_number(row['metric_value'])}</td>"
        f"<td>{_number(row['test_value'])}</td><td>{row['test_rows'] if row['test_rows'] is not None else '-'}</td>"
        f"<td>{_number(row['drop'])}</td><td>{html.escape(row['decision'])}</td></tr>"
        for row in check["slices"]
    )
    metric = html.escape(check["metric"])
    return f"""<h2>Slices</h2>
<p><b>{verdict}</b>: {html.escape(check["decision"])}.</p>
<p>Rule: a slice with at least {check["min_slice_rows"]:,} labeled predictions whose {metric} is worse than the
champion's test value on the same slice by more than {check["max_slice_metric_drop"]:g} has decayed; a decay
{action}.</p>
<table><tr><th>column</th><th>value</th><th>labeled rows</th><th>{metric} on labeled predictions</th>
<th>{metric} on the test split</th><th>test rows</th><th>drop</th><th>decision</th></tr>
{rows}
</table>
"""


def estimate_section(check: dict[str, Any] | None, performance: dict[str, Any] | None) -> str:
    """The estimated metrics of the window, and on the labeled rows beside the realised ones."""
    if check is None:
        return ""
    if not check["available"]:
        return f"<h2>Estimated performance (no labels)</h2>\n<p>{html.escape(check['decision'])}.</p>\n"
    verdict = "ESTIMATED DECAY" if check["decayed"] else "no estimated decay"
    action = "requests retraining" if check["retrain"] else "is reported as an alert (use_estimate: false)"
    realised = (performance or {}).get("metrics") or {}
    labeled = check["labeled_estimate"] or {}
    rows = "".join(
        f"<tr class='{'primary' if name == check['metric'] else ''}'><td>{html.escape(name)}</td>"
        f"<td>{_number(value)}</td><td>{_number(labeled.get(name))}</td><td>{_number(realised.get(name))}</td></tr>"
        for name, value in sorted(check["metrics"].items())
    )
    return f"""<h2>Estimated performance (no labels)</h2>
<p><b>{verdict}</b>: {html.escape(check["decision"])}.</p>
<p>Confidence-based estimate from the logged scores ({html.escape(check["calibration"])}); it assumes calibrated
scores and no concept drift. Rule: with at least {check["min_rows"]:,} logged predictions, an estimated
{html.escape(check["metric"])} worse than the champion's test value by more than {check["estimated_metric_drop"]:g}
has decayed; a decay {action}.</p>
<table><tr><th>metric</th><th>estimated, {check["rows"]:,} logged predictions</th>
<th>estimated on the labeled predictions</th><th>realised on the labeled predictions</th></tr>
{rows}
</table>
"""
