"""Drift: PSI flags shifted features, ignores noise, and the decision rule is applied."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core.data import synthetic
from airflow_mlops.core.operations.drift.detect import categorical_psi, detect_drift, numeric_psi

pytestmark = pytest.mark.unit

NUMERIC = ["tenure_months", "monthly_charges", "support_calls", "usage_gb"]
CATEGORICAL = ["plan", "region", "payment_method"]


def test_identical_distributions_have_near_zero_psi():
    rng = np.random.default_rng(0)
    a, b = pd.Series(rng.normal(size=50_000)), pd.Series(rng.normal(size=50_000))
    assert numeric_psi(a, b, bins=10) < 0.01


def test_mean_shift_raises_psi_above_threshold():
    rng = np.random.default_rng(0)
    a, b = pd.Series(rng.normal(size=20_000)), pd.Series(rng.normal(1.0, 1.0, size=20_000))
    assert numeric_psi(a, b, bins=10) > 0.2


def test_new_missing_values_count_as_drift():
    a = pd.Series(np.arange(1000, dtype=float))
    b = a.copy()
    b[:500] = np.nan
    assert numeric_psi(a, b, bins=10) > 0.2


def test_categorical_psi_sees_share_changes_and_new_categories():
    a = pd.Series(["x"] * 500 + ["y"] * 500)
    assert categorical_psi(a, a.copy()) == pytest.approx(0.0, abs=1e-9)
    assert categorical_psi(a, pd.Series(["x"] * 900 + ["y"] * 100)) > 0.2
    assert categorical_psi(a, pd.Series(["x"] * 500 + ["z"] * 500)) > 0.2


def test_report_flags_exactly_the_shifted_generator_columns():
    reference = synthetic.churn_batch(20_000, seed=1)
    noise = detect_drift(reference, synthetic.churn_batch(20_000, seed=2), NUMERIC, CATEGORICAL)
    assert not noise.drift_detected and noise.drifted_features == []
    shifted = detect_drift(reference, synthetic.churn_batch(20_000, seed=2, drift=0.6), NUMERIC, CATEGORICAL)
    assert shifted.drift_detected
    assert "region" not in shifted.drifted_features and "payment_method" not in shifted.drifted_features
    assert {"monthly_charges", "usage_gb", "support_calls"} <= set(shifted.drifted_features)


def test_min_drifted_features_rule():
    reference = synthetic.churn_batch(5000, seed=1)
    current = synthetic.churn_batch(5000, seed=2, drift=0.6)
    count = len(detect_drift(reference, current, NUMERIC, CATEGORICAL).drifted_features)
    report = detect_drift(reference, current, NUMERIC, CATEGORICAL, min_drifted_features=count + 1)
    assert not report.drift_detected and len(report.drifted_features) == count


def test_missing_feature_and_empty_input_are_named():
    reference = synthetic.churn_batch(100, seed=1)
    with pytest.raises(ValueError, match=r"lacks feature columns \['plan'\]"):
        detect_drift(reference, reference.drop(columns=["plan"]), NUMERIC, CATEGORICAL)
    with pytest.raises(ValueError, match="empty data"):
        detect_drift(reference, reference.iloc[0:0], NUMERIC, CATEGORICAL)


def test_logged_model_inputs_compare_equal_to_the_raw_reference():
    """The prediction log holds model inputs ("" for missing, values as text); the reference is raw."""
    raw = pd.Series(["basic", None, "premium", np.nan, "basic"] * 200, dtype="object")
    logged = raw.map(lambda v: "" if v is None or v != v else str(v))
    assert categorical_psi(raw, logged) == pytest.approx(0.0, abs=1e-9)
    ints = pd.Series([1, 2, None, 2] * 100, dtype="Int64")
    assert categorical_psi(ints, ints.astype("object").map(lambda v: "" if v is pd.NA else str(v))) == pytest.approx(
        0.0, abs=1e-9
    )


def test_a_million_rows_of_noise_are_significant_somewhere_but_never_drift():
    """A tiny shift is 'significant' at this size; the effect-size half of the rule keeps it quiet."""
    rng = np.random.default_rng(7)
    n = 1_000_000
    reference = pd.DataFrame({"x": rng.normal(0.0, 1.0, n), "c": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])})
    current = pd.DataFrame({"x": rng.normal(0.03, 1.0, n), "c": rng.choice(["a", "b", "c"], n, p=[0.49, 0.31, 0.2])})
    report = detect_drift(reference, current, ["x"], ["c"])
    by_name = {f.feature: f for f in report.features}
    assert by_name["x"].p_value < 0.005 and by_name["c"].p_value < 0.005  # significant ...
    assert by_name["x"].psi < 0.01 and by_name["x"].effect < 0.03
    assert not report.drift_detected  # ... but small: no alarm
    assert by_name["x"].reason.startswith("significant") and by_name["c"].effect < 0.02


def test_a_large_shift_on_few_rows_needs_significance_too():
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"x": rng.normal(0.0, 1.0, 30)})
    current = pd.DataFrame({"x": rng.normal(0.5, 1.0, 30)})
    feature = detect_drift(reference, current, ["x"], []).features[0]
    # PSI on 30 rows is 2.0 and D is 0.37, yet p = 0.026: too few rows to tell; no alarm.
    assert feature.psi > 0.2 and feature.effect > 0.1 and feature.p_value > 0.01 and not feature.drifted
    assert feature.reason.startswith("large") and "not significant" in feature.reason
    shifted = detect_drift(
        pd.DataFrame({"x": rng.normal(0, 1, 5000)}), pd.DataFrame({"x": rng.normal(1.0, 1, 5000)}), ["x"], []
    ).features[0]
    assert shifted.drifted and shifted.test == "ks" and shifted.effect > 0.3 and shifted.p_value < 1e-10


def test_html_report_names_every_feature_marks_the_drifted_and_embeds_plots():
    from airflow_mlops.core.operations.drift.report import render_drift_html

    reference = synthetic.churn_batch(3000, seed=1)
    current = synthetic.churn_batch(3000, seed=2, drift=0.8)
    report = detect_drift(reference, current, NUMERIC, CATEGORICAL)
    page = render_drift_html(report, reference, current, "churn <drift>")
    assert page.startswith("<!DOCTYPE html>") and "churn &lt;drift&gt;" in page
    assert page.count("<tr class='drifted'>") == len(report.drifted_features) > 0
    assert page.count("<tr class='stable'>") == len(report.features) - len(report.drifted_features)
    assert page.count("data:image/png;base64,") == len(NUMERIC) + len(CATEGORICAL)
    assert "DRIFT DETECTED" in page


def test_prediction_drift_compares_score_distributions():
    from airflow_mlops.core.operations.drift.detect import prediction_drift

    rng = np.random.default_rng(5)
    reference = rng.beta(2, 5, 20_000)
    same = prediction_drift(reference, rng.beta(2, 5, 20_000))
    moved = prediction_drift(reference, rng.beta(5, 2, 20_000))
    assert not same.drifted and same.reason == "stable"
    assert moved.drifted and moved.feature == "prediction" and moved.effect > 0.5
