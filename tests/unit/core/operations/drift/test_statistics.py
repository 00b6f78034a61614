"""The drift-statistic registry: every row is applied by detect and shown in the report, its
threshold is a monitoring field, and one added row is all detect and the report need."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core.operations.drift import statistics
from airflow_mlops.core.operations.drift.detect import detect_drift, predicted_label_drift, prediction_drift
from airflow_mlops.core.operations.drift.report import render_drift_html
from airflow_mlops.core.operations.drift.statistics import CATEGORICAL, KINDS, NUMERIC, Measure, Statistic
from airflow_mlops.spec import MonitoringSpec

pytestmark = pytest.mark.unit


def _frames(rows=4000, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)

    def one(offset, shares):
        return pd.DataFrame({"x": rng.normal(offset, 1.0, rows), "c": rng.choice(["a", "b", "c"], rows, p=shares)})

    return one(0.0, [0.5, 0.3, 0.2]), one(shift, [0.5 - shift / 4, 0.3, 0.2 + shift / 4])


def test_each_kind_has_one_test_and_the_score_and_every_threshold_is_a_monitoring_field():
    for kind in KINDS:
        assert statistics.kind_test(kind).test
        assert statistics.SCORE in [row.name for row in statistics.applying(kind)]
        assert statistics.applying(kind)[-1] is statistics.kind_test(kind)  # shifts first, then the test
    assert len({row.name for row in statistics.STATISTICS}) == len(statistics.STATISTICS)
    defaults = statistics.thresholds()
    assert set(defaults) == set(statistics.threshold_fields()) <= set(MonitoringSpec.model_fields)
    assert defaults == {name: MonitoringSpec.model_fields[name].default for name in defaults}
    monitoring = MonitoringSpec(psi_threshold=0.5, effect_threshold=0.3)
    assert statistics.thresholds(monitoring) == {"psi_threshold": 0.5, "effect_threshold": 0.3}
    assert statistics.thresholds(monitoring, psi_threshold=0.7)["psi_threshold"] == 0.7
    with pytest.raises(TypeError, match=r"unknown drift threshold\(s\) \['psi_treshold'\]"):
        detect_drift(*_frames(), ["x"], ["c"], psi_treshold=0.1)


def test_every_row_is_applied_by_detect_with_the_values_its_function_computes():
    reference, current = _frames(shift=0.5)
    report = detect_drift(reference, current, ["x"], ["c"], bins=8)
    by_name = {f.feature: f for f in report.features}
    prepared = {
        "x": statistics.Numbers(statistics.floats(reference["x"]), statistics.floats(current["x"]), 8),
        "c": statistics.category_counts(reference["c"], current["c"]),
    }
    for column, kind in (("x", NUMERIC), ("c", CATEGORICAL)):
        feature = by_name[column]
        test = statistics.kind_test(kind)
        assert (feature.test, (feature.effect, feature.p_value)) == (test.name, test.compute[kind](prepared[column]))
        shift_rows = [row for row in statistics.applying(kind) if not row.test]
        assert feature.shifts == {row.name: row.compute[kind](prepared[column]).value for row in shift_rows}
        assert feature.psi == feature.shifts[statistics.SCORE] and feature.drifted
        assert all(row.label in feature.reason for row in statistics.applying(kind))
    scores = prediction_drift(reference["x"].to_numpy(), current["x"].to_numpy(), bins=8)
    labels = predicted_label_drift(reference["c"].to_numpy(), current["c"].to_numpy())
    assert (scores.test, scores.shifts, scores.kind) == ("ks", by_name["x"].shifts, "prediction")
    assert (labels.test, labels.effect) == ("chi2", by_name["c"].effect)


def test_the_thresholds_travel_into_the_report_and_its_json_keys():
    report = detect_drift(*_frames(), ["x"], ["c"], psi_threshold=0.3, effect_threshold=0.05)
    data = report.as_dict()
    assert (data["psi_threshold"], data["effect_threshold"], report.psi_threshold) == (0.3, 0.05, 0.3)
    assert "thresholds" not in data and data["features"][0]["shifts"] == {"psi": report.features[0].psi}


def _rule(limits):
    """The "large" half of the report's rule, as the rows say it should read."""
    ordered = [*(r for r in statistics.STATISTICS if not r.test), *(r for r in statistics.STATISTICS if r.test)]
    groups: dict[str, list[str]] = {}
    for row in ordered:
        groups.setdefault(row.threshold, []).append(row.label.replace("é", "&eacute;").replace("Δ", "&Delta;"))
    return ", or ".join(f"{' / '.join(labels)} &gt; {limits[name]:g}" for name, labels in groups.items())


def test_every_row_is_shown_in_the_report():
    reference, current = _frames(shift=0.5)
    report = detect_drift(reference, current, ["x"], ["c"], psi_threshold=0.25, effect_threshold=0.15)
    page = render_drift_html(report, reference, current, "t", plots=False)
    header = page[page.index("<table>") : page.index("</tr>")]
    symbols = " / ".join(row.symbol for row in statistics.STATISTICS if row.test)
    assert f"<th>effect ({symbols})</th>" in header
    assert f"({_rule(report.thresholds)}).</p>" in page
    for feature in report.features:
        line = page[page.index(f"<td>{feature.feature}</td>") :].split("</tr>")[0]
        assert f"<td>{feature.test}</td><td>{feature.p_value:.3g}</td><td>{feature.effect:.4f}</td>" in line
        assert all(f"<td>{value:.4f}</td>" in line for value in feature.shifts.values())
    for row in statistics.STATISTICS:
        assert (f"<th>{row.label}</th>" in header) is (not row.test)


def test_the_rows_of_today_render_the_rule_and_header_as_before_the_registry():
    """Pinned: what the page said when PSI, KS and chi-square were written into the report by hand
    (a new row changes these two lines on purpose: update them with it)."""
    assert [row.name for row in statistics.STATISTICS] == ["psi", "ks", "chi2"]
    reference, current = _frames(shift=0.5)
    report = detect_drift(reference, current, ["x"], ["c"], psi_threshold=0.25, effect_threshold=0.15)
    page = render_drift_html(report, reference, current, "t", plots=False)
    assert "(PSI &gt; 0.25, or KS D / Cram&eacute;r's V &gt; 0.15).</p>" in page
    assert "<th>p-value</th><th>effect (D / V)</th><th>PSI</th>\n<th>verdict</th><th>why</th></tr>" in page


def _mean_gap(sides: statistics.Numbers) -> Measure:
    """A made-up shift statistic: the gap of the means in reference standard deviations."""
    ref, cur = sides.reference[~np.isnan(sides.reference)], sides.current[~np.isnan(sides.current)]
    return Measure(float(abs(cur.mean() - ref.mean()) / ref.std()))


def test_an_added_row_is_computed_judged_and_shown_without_touching_detect_or_report(monkeypatch):
    """A significant but small shift (p tiny, PSI and KS D small) drifts once a row finds it large."""
    rng = np.random.default_rng(1)
    reference = pd.DataFrame({"x": rng.normal(0.0, 1.0, 200_000), "c": ["a"] * 200_000})
    current = pd.DataFrame({"x": rng.normal(0.06, 1.0, 200_000), "c": ["a"] * 200_000})
    before = detect_drift(reference, current, ["x"], ["c"], effect_threshold=0.04)
    assert not before.drift_detected and before.features[0].reason.startswith("significant")

    gap = Statistic("mean_gap", "Δ mean", {NUMERIC: _mean_gap}, threshold="effect_threshold", digits=3)
    monkeypatch.setattr(statistics, "STATISTICS", (*statistics.STATISTICS[:1], gap, *statistics.STATISTICS[1:]))
    after = detect_drift(reference, current, ["x"], ["c"], effect_threshold=0.04)
    x, c = after.features
    assert after.drifted_features == ["x"] and x.shifts["mean_gap"] == pytest.approx(0.06, abs=0.01)
    assert f"Δ mean={x.shifts['mean_gap']:.3f}" in x.reason and "mean_gap" not in c.shifts
    old = before.features[0]
    assert (x.psi, x.effect, x.p_value) == (old.psi, old.effect, old.p_value)  # the other rows are as they were
    page = render_drift_html(after, reference, current, "t", plots=False)
    assert "<th>&Delta; mean</th>" in page and f"({_rule(after.thresholds)}).</p>" in page
    assert "&Delta; mean / " in _rule(after.thresholds) and "&Delta; mean &gt;" not in _rule(after.thresholds)
    x_line, c_line = (page[page.index(f"<td>{name}</td>") :].split("</tr>")[0] for name in ("x", "c"))
    column = [row.name for row in statistics.STATISTICS if not row.test].index("mean_gap")
    assert x_line.split("<td>")[6 + column] == f"{x.shifts['mean_gap']:.3f}</td>"  # 3 digits, as the row says
    assert c_line.split("<td>")[6 + column] == "-</td>"  # not a statistic of categories


def test_docs_list_every_statistic():
    """docs/concepts.md's table of drift statistics has one line per row, with its threshold."""
    from pathlib import Path

    concepts = (Path(__file__).resolve().parents[5] / "docs" / "concepts.md").read_text(encoding="utf-8")
    lines = {line.split("`")[1]: line for line in concepts.splitlines() if line.startswith("| `") and "`: " in line}
    assert sorted(lines) == sorted(row.name for row in statistics.STATISTICS)
    for row in statistics.STATISTICS:
        assert lines[row.name].rstrip().endswith(f"`monitoring.{row.threshold}` |")
