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
    monitoring = MonitoringSpec(psi_threshold=0.5, effect_threshold=0.3, wasserstein_threshold=0.2)
    assert statistics.thresholds(monitoring) == {
        "psi_threshold": 0.5,
        "wasserstein_threshold": 0.2,
        "jensen_shannon_threshold": 0.1,
        "effect_threshold": 0.3,
    }
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
    assert "thresholds" not in data and set(data["features"][0]["shifts"]) == {"psi", "wasserstein"}
    assert data["features"][0]["thresholds"] == {
        "psi_threshold": 0.3,
        "wasserstein_threshold": 0.1,
        "effect_threshold": 0.05,
    }
    assert data["features"][1]["thresholds"]["jensen_shannon_threshold"] == 0.1


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


def test_the_rows_of_today_render_the_rule_and_header_as_pinned():
    """Pinned: what the page says with today's rows (PSI, the normed Wasserstein and Jensen-Shannon
    distances of issue 15, KS, chi-square); a new row changes these two lines on purpose."""
    assert [row.name for row in statistics.STATISTICS] == ["psi", "wasserstein", "jensen_shannon", "ks", "chi2"]
    reference, current = _frames(shift=0.5)
    report = detect_drift(reference, current, ["x"], ["c"], psi_threshold=0.25, effect_threshold=0.15)
    page = render_drift_html(report, reference, current, "t", plots=False)
    rule = (
        "(PSI &gt; 0.25, or normed Wasserstein &gt; 0.1, or Jensen-Shannon &gt; 0.1, "
        "or KS D / Cram&eacute;r's V &gt; 0.15).</p>"
    )
    assert rule in page
    header = (
        "<th>effect (D / V)</th><th>PSI</th><th>normed Wasserstein</th><th>Jensen-Shannon</th>\n"
        "<th>verdict</th><th>why</th></tr>"
    )
    assert header in page and "own thresholds" not in page


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


def test_ks_and_wasserstein_are_scipys_on_the_shared_samples():
    """One sort serves both: D and p as scipy's ks_2samp of the samples, W/std as scipy's wasserstein_distance."""
    from scipy import stats

    rng = np.random.default_rng(3)
    reference, current = rng.normal(5.0, 2.0, 150_000), rng.normal(5.3, 2.0, 80_000)
    reference[:500] = np.nan
    sides = statistics.Numbers(reference, current, 10)
    ref, cur = sides.samples
    assert len(ref) == statistics.KS_SAMPLE and len(cur) == 80_000 and not np.isnan(ref).any()
    expected = stats.ks_2samp(ref, cur, method="asymp")
    assert statistics.ks(sides) == Measure(pytest.approx(expected.statistic, abs=1e-12), pytest.approx(expected.pvalue))
    normed = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert statistics.wasserstein(sides).value == pytest.approx(normed, rel=1e-9)
    assert statistics.wasserstein(sides).value == pytest.approx(0.15, abs=0.01)  # a shift of 0.15 sd reads 0.15
    constant = statistics.Numbers(np.full(100, 3.0), np.full(100, 3.0), 10)
    assert statistics.wasserstein(constant).value == 0.0 and statistics.ks(constant) == Measure(0.0, 1.0)
    empty = statistics.Numbers(np.full(5, np.nan), np.ones(5), 10)
    assert statistics.wasserstein(empty) == Measure(0.0) and statistics.ks(empty) == Measure(0.0, 1.0)


def test_jensen_shannon_is_scipys_distance_of_the_category_shares():
    from scipy.spatial import distance

    counts = statistics.category_counts(
        pd.Series(["a"] * 40 + ["b"] * 30 + ["c"] * 30), pd.Series(["a"] * 20 + ["b"] * 30 + ["d"] * 50)
    )
    shares = counts.table / counts.table.sum(axis=1, keepdims=True)
    assert statistics.jensen_shannon(counts).value == pytest.approx(distance.jensenshannon(*shares))
    same = statistics.category_counts(pd.Series(list("aab")), pd.Series(list("aab")))
    assert statistics.jensen_shannon(same).value == pytest.approx(0.0, abs=1e-12)


def test_a_mean_shift_of_a_fifth_of_a_std_drifts_by_the_default_and_not_by_the_rule_before_it():
    """The reason for the Wasserstein row: KS D (0.08) and PSI (0.04) call 0.2 sd small, as Evidently does not."""
    rng = np.random.default_rng(4)
    reference = pd.DataFrame({"x": rng.normal(0.0, 1.0, 10_000)})
    current = pd.DataFrame({"x": rng.normal(0.2, 1.0, 10_000)})
    before = detect_drift(reference, current, ["x"], [], wasserstein_threshold=np.inf)
    now = detect_drift(reference, current, ["x"], [])
    assert not before.drift_detected and before.features[0].reason.startswith("significant")
    assert now.drifted_features == ["x"] and "normed Wasserstein=0.19" in now.features[0].reason
    unshifted = detect_drift(reference, pd.DataFrame({"x": rng.normal(0.0, 1.0, 10_000)}), ["x"], [])
    assert not unshifted.drift_detected and unshifted.features[0].shifts["wasserstein"] < 0.05


def test_per_feature_thresholds_judge_their_column_only_and_show_in_json_and_report():
    rng = np.random.default_rng(5)
    rows = 10_000
    reference = pd.DataFrame({"wait time/min": rng.normal(0, 1, rows), "x": rng.normal(0, 1, rows)})
    reference["tier (paid)"] = rng.choice(["a", "b"], rows)
    current = pd.DataFrame({"wait time/min": rng.normal(0.3, 1, rows), "x": rng.normal(0.3, 1, rows)})
    current["tier (paid)"] = rng.choice(["a", "b"], rows, p=[0.7, 0.3])
    columns = (["wait time/min", "x"], ["tier (paid)"])
    default = detect_drift(reference, current, *columns)
    assert default.drifted_features == ["wait time/min", "x", "tier (paid)"]
    own = {
        "wait time/min": {"wasserstein_threshold": 0.5, "effect_threshold": 0.5},
        "tier (paid)": {"effect_threshold": 0.5},
    }
    report = detect_drift(reference, current, *columns, per_feature=own)
    wait, x, tier = report.features
    assert report.drifted_features == ["x", "tier (paid)"]  # JS 0.14 > 0.1 still flags the category
    assert wait.thresholds == {"psi_threshold": 0.2, "wasserstein_threshold": 0.5, "effect_threshold": 0.5}
    assert (wait.own_thresholds, x.own_thresholds, tier.own_thresholds) == (
        ["wasserstein_threshold", "effect_threshold"],
        [],
        ["effect_threshold"],
    )
    assert report.thresholds == statistics.thresholds() and x.thresholds["wasserstein_threshold"] == 0.1
    assert report.as_dict()["features"][0]["own_thresholds"] == ["wasserstein_threshold", "effect_threshold"]
    page = render_drift_html(report, reference, current, "t", plots=False)
    assert "<th>own thresholds</th></tr>" in page and "thresholds of their own (last column)" in page
    wait_line = page[page.index("<td>wait time/min</td>") :].split("</tr>")[0]
    assert wait_line.endswith("<td>normed Wasserstein &gt; 0.5, KS D &gt; 0.5</td>")
    assert page[page.index("<td>x</td>") :].split("</tr>")[0].endswith("<td>-</td>")
    with pytest.raises(ValueError, match=r"not features: \['y'\]"):
        detect_drift(reference, current, *columns, per_feature={"y": {"psi_threshold": 1.0}})
    with pytest.raises(TypeError, match="psi_treshold"):
        detect_drift(reference, current, *columns, per_feature={"x": {"psi_treshold": 1.0}})


def test_the_spec_knows_which_thresholds_belong_to_one_kind_as_the_rows_say():
    from airflow_mlops.spec import FeatureThresholdsSpec
    from airflow_mlops.spec.operations import KIND_THRESHOLDS

    assert set(FeatureThresholdsSpec.model_fields) == set(statistics.threshold_fields())
    kinds = {
        name: {k for row in statistics.STATISTICS if row.threshold == name for k in row.kinds}
        for name in statistics.threshold_fields()
    }
    assert {name: next(iter(k)) for name, k in kinds.items() if len(k) == 1} == KIND_THRESHOLDS
    assert statistics.feature_thresholds(MonitoringSpec(features={"x": {"psi_threshold": 0.4}})) == {
        "x": {"psi_threshold": 0.4}
    }
