"""The drift report as one self-contained HTML page: the verdict, a table of every feature's
test, p-value, effect sizes, reason (and thresholds of its own, when some feature has them),
the champion's performance on delayed labels, and a plot per feature (reference vs current).
The table's statistic columns and the rule sentence come from the rows of ``statistics``:
a new statistic shows up without a change here.

Plots are PNG images embedded as base64, so the page opens from an artifact store or the
MLflow UI without other files. Numeric features are drawn as density histograms on the
reference's range; categorical ones as side-by-side shares (top 15 categories).
"""

from __future__ import annotations

import base64
import html
import io
from html.entities import codepoint2name
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlops.core.operations.drift import statistics as drift_stats
from airflow_mlops.core.operations.drift.detect import DriftReport, FeatureDrift

MAX_CATEGORIES = 15
PLOT_SAMPLE = 200_000


def _png(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _sample(values: np.ndarray) -> np.ndarray:
    if len(values) <= PLOT_SAMPLE:
        return values
    return values[np.random.default_rng(0).integers(0, len(values), PLOT_SAMPLE)]


def _numeric_plot(name: str, reference: pd.Series, current: pd.Series) -> str:
    import matplotlib.pyplot as plt

    ref = pd.to_numeric(reference, errors="coerce").dropna().to_numpy(dtype="float64")
    cur = pd.to_numeric(current, errors="coerce").dropna().to_numpy(dtype="float64")
    figure, axis = plt.subplots(figsize=(4.2, 2.6))
    both = np.concatenate([ref, cur]) if len(ref) + len(cur) else np.zeros(1)
    low, high = np.quantile(both, [0.005, 0.995]) if len(both) > 1 else (0.0, 1.0)
    bins = np.linspace(low, high if high > low else low + 1, 40).tolist()
    axis.hist(_sample(ref), bins=bins, density=True, alpha=0.55, label="reference")
    axis.hist(_sample(cur), bins=bins, density=True, alpha=0.55, label="current")
    axis.set_title(name, fontsize=9)
    axis.legend(fontsize=7)
    return _png(figure)


def _categorical_plot(name: str, reference: pd.Series, current: pd.Series) -> str:
    import matplotlib.pyplot as plt

    ref = drift_stats.categories(reference).value_counts(normalize=True)
    cur = drift_stats.categories(current).value_counts(normalize=True)
    shares = pd.concat([ref, cur], axis=1, keys=["reference", "current"]).fillna(0.0)
    shares = shares.sort_values("reference", ascending=False).head(MAX_CATEGORIES)
    figure, axis = plt.subplots(figsize=(4.2, 2.6))
    positions = np.arange(len(shares))
    axis.bar(positions - 0.2, shares["reference"], width=0.4, label="reference")
    axis.bar(positions + 0.2, shares["current"], width=0.4, label="current")
    axis.set_xticks(positions, [str(i)[:12] for i in shares.index], rotation=30, fontsize=7)
    axis.set_title(name, fontsize=9)
    axis.legend(fontsize=7)
    return _png(figure)


def _performance_section(performance: dict[str, Any] | None) -> str:
    """The champion's metrics on the predictions whose delayed labels arrived, vs its test metrics."""
    if performance is None:
        return "<h2>Performance</h2>\n<p>No delayed labels have arrived for this champion's predictions.</p>\n"
    verdict = "PERFORMANCE DECAY" if performance["decayed"] else "no decay"
    test_value = performance["test_value"]
    rows = []
    for name, value in sorted(performance["metrics"].items()):
        primary = name == performance["metric"]
        test = f"{test_value:.4f}" if primary and test_value is not None else "-"
        rows.append(
            f"<tr class='{'primary' if primary else ''}'><td>{html.escape(name)}</td><td>{value:.4f}</td>"
            f"<td>{test}</td></tr>"
        )
    direction = "higher" if performance["higher_is_better"] else "lower"
    return f"""<h2>Performance</h2>
<p><b>{verdict}</b>: {html.escape(performance["decision"])}.</p>
<p>Rule: with at least {performance["min_labeled_rows"]:,} labeled predictions, {html.escape(performance["metric"])}
({direction} is better) worse than the champion's test value by more than {performance["max_metric_drop"]:g}
requests retraining. Labeled predictions: {performance["labeled_rows"]:,}.</p>
<table><tr><th>metric</th><th>on labeled predictions</th><th>champion's test value</th></tr>
{"".join(rows)}
</table>
"""


def _entities(text: str) -> str:
    """``text`` for HTML, accented letters as named entities (the page's markup stays ASCII)."""
    escaped = html.escape(text, quote=False)
    return "".join(f"&{codepoint2name[ord(c)]};" if ord(c) > 127 and ord(c) in codepoint2name else c for c in escaped)


def _shift_rows() -> list[drift_stats.Statistic]:
    """The statistics that are not tests, each a column of the table (PSI)."""
    return [row for row in drift_stats.statistics() if not row.test]


def _table_header(own: bool) -> str:
    """The table's header; ``own``: with the column of per-feature thresholds (``monitoring.features``)."""
    symbols = " / ".join(row.symbol for row in drift_stats.statistics() if row.test)
    shifts = "".join(f"<th>{_entities(row.label)}</th>" for row in _shift_rows())
    return (
        f"<table><tr><th>feature</th><th>kind</th><th>test</th><th>p-value</th><th>effect ({symbols})</th>{shifts}\n"
        f"<th>verdict</th><th>why</th>{'<th>own thresholds</th>' if own else ''}</tr>"
    )


def _own_thresholds(feature: FeatureDrift) -> str:
    """The thresholds set for this feature alone, each with the statistics compared with it."""
    kind = feature.kind if feature.kind in drift_stats.KINDS else drift_stats.NUMERIC
    parts = []
    for name in feature.own_thresholds:
        labels = [_entities(row.label) for row in drift_stats.applying(kind) if row.threshold == name]
        parts.append(f"{' / '.join(labels)} &gt; {feature.thresholds[name]:g}")
    return ", ".join(parts) or "-"


def _feature_row(feature: FeatureDrift, own: bool = False) -> str:
    """One feature's line: its test, p-value, the test's effect size, each shift statistic, verdict, reason."""
    mark = "drifted" if feature.drifted else "stable"
    p_value = "-" if feature.p_value is None else f"{feature.p_value:.3g}"
    digits = next((row.digits for row in drift_stats.statistics() if row.test and row.name == feature.test), 4)
    effect = "-" if feature.effect is None else f"{feature.effect:.{digits}f}"
    shifts = "".join(
        "<td>{}</td>".format("-" if (value := feature.shifts.get(row.name)) is None else f"{value:.{row.digits}f}")
        for row in _shift_rows()
    )
    return (
        f"<tr class='{mark}'><td>{html.escape(feature.feature)}</td><td>{feature.kind}</td><td>{feature.test}</td>"
        f"<td>{p_value}</td><td>{effect}</td>{shifts}<td>{mark}</td><td>{html.escape(feature.reason)}</td>"
        f"{f'<td>{_own_thresholds(feature)}</td>' if own else ''}</tr>"
    )


def _large_rule(report: DriftReport) -> str:
    """The "large" half of the rule: each threshold and the statistics compared with it, shifts first."""
    ordered = [*_shift_rows(), *(row for row in drift_stats.statistics() if row.test)]
    groups: dict[str, list[str]] = {}
    for row in ordered:
        groups.setdefault(row.threshold, []).append(_entities(row.label))
    return ", or ".join(f"{' / '.join(labels)} &gt; {report.thresholds[name]:g}" for name, labels in groups.items())


def render_drift_html(
    report: DriftReport,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    title: str,
    plots: bool = True,
    performance: dict[str, Any] | None = None,
    slices: dict[str, Any] | None = None,
    estimate: dict[str, Any] | None = None,
) -> str:
    """One HTML page for ``report``; ``reference``/``current`` hold the features it compared.

    ``performance`` (from ``performance.assess_performance``) adds the Performance section:
    the champion's metrics on its labeled predictions against its test metrics; ``slices``
    (``slices.assess_slices``) and ``estimate`` (``estimation.assess_estimate``) add theirs
    (``core.operations.checks_report``).
    """
    import matplotlib

    from airflow_mlops.core.operations.checks_report import estimate_section, slices_section

    matplotlib.use("Agg")
    verdict = "DRIFT DETECTED" if report.drift_detected else "no drift"
    own = any(feature.own_thresholds for feature in report.features)
    table = [_feature_row(feature, own) for feature in report.features]
    images = []
    if plots:
        for feature in report.features:
            draw = _numeric_plot if feature.kind == "numeric" else _categorical_plot
            image = draw(feature.feature, reference[feature.feature], current[feature.feature])
            images.append(
                f"<figure><img alt='{html.escape(feature.feature)}' src='data:image/png;base64,{image}'/></figure>"
            )
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }} table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; font-size: 13px; }} tr.drifted {{ background: #fde2e2; }}
figure {{ display: inline-block; margin: 4px; }} tr.primary {{ font-weight: bold; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p><b>{verdict}</b>: {len(report.drifted_features)} of {len(report.features)} features drifted
(needed {report.min_drifted_features}); reference {report.reference_rows:,} rows,
current {report.current_rows:,} rows.</p>
<p>Rule: a feature drifts when its test is significant
(p &lt; {report.alpha:g} / {len(report.features)} features) and the shift is large
({_large_rule(report)}){"; some features have thresholds of their own (last column)" if own else ""}.</p>
{_table_header(own)}
{"".join(table)}
</table>
{_performance_section(performance)}{slices_section(slices)}{estimate_section(estimate, performance)}
<h2>Reference vs current</h2>
{"".join(images)}
</body></html>
"""
