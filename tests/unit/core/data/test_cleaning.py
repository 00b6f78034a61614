"""Cleaning: normalisation at training and prediction, deduplication, clipping, imputation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from airflow_mlops.core.data import ingest, synthetic
from airflow_mlops.core.data.cleaning import Deduplicator, apply_clip, clip_bounds
from airflow_mlops.core.data.profiling import profile_frame
from airflow_mlops.core.io import tables
from airflow_mlops.core.model.training import build_pipeline, feature_frame, fit
from airflow_mlops.spec import CleaningSpec, SpecError, parse_spec
from tests.conftest import EXAMPLE_SPEC

pytestmark = pytest.mark.unit


def _cleaning(spec, **cleaning):
    return spec.model_copy(update={"cleaning": CleaningSpec(**cleaning)})


def test_normalisation_applies_at_ingestion_and_again_at_prediction(spec, tmp_path):
    rule = _cleaning(spec, normalize=[{"columns": ["plan"], "lowercase": True, "mapping": {"prem": "premium"}}])
    frame = synthetic.churn_batch(300, seed=1)
    frame["plan"] = frame["plan"].replace({"premium": " PREM ", "basic": "Basic"})
    uri = tables.write_parquet(frame, str(tmp_path / "in.parquet"))
    result = ingest.ingest(rule, [uri], str(tmp_path / "out.parquet"))
    assert set(tables.read_table(result.uri)["plan"]) == {"basic", "standard", "premium"}
    assert set(feature_frame(frame, rule)["plan"]) == {"basic", "standard", "premium"}  # scoring path too


def test_deduplication_keeps_the_first_row_across_chunks_and_files(spec, tmp_path):
    rule = _cleaning(spec, deduplicate={"subset": ["customer_id"]})
    frame = synthetic.churn_batch(300, seed=1)
    first = tables.write_parquet(frame, str(tmp_path / "1.parquet"))
    again = tables.write_parquet(pd.concat([frame.head(50), frame.head(10)]), str(tmp_path / "2.parquet"))
    result = ingest.ingest(rule, [first, again], str(tmp_path / "out.parquet"))
    assert result.rows == 300 and result.duplicates_dropped == 60
    assert tables.read_table(result.uri)["customer_id"].is_unique


def test_deduplicator_within_one_chunk():
    dedupe = Deduplicator(_cleaning_spec_for_dedupe())
    chunk = pd.DataFrame({"k": [1, 1, 2, 3, 3, 3], "v": [1, 2, 3, 4, 5, 6]})
    assert dedupe.apply(chunk)["v"].tolist() == [1, 3, 4] and dedupe.dropped == 3


def _cleaning_spec_for_dedupe():
    raw = yaml.safe_load(EXAMPLE_SPEC.read_text())
    raw["cleaning"] = {"deduplicate": {"subset": ["k"]}}
    return parse_spec(yaml.safe_dump(raw))


def test_clip_uses_fixed_bounds_or_profile_quantiles(spec):
    frame = synthetic.churn_batch(2000, seed=1)
    rule = _cleaning(spec, clip={"usage_gb": {"upper_quantile": "p95"}, "monthly_charges": {"min": 10, "max": 90}})
    bounds = clip_bounds(rule, profile_frame(frame))
    clipped = apply_clip(frame, bounds)
    assert clipped["usage_gb"].max() == pytest.approx(bounds["usage_gb"][1])
    assert clipped["monthly_charges"].min() >= 10 and clipped["monthly_charges"].max() <= 90
    assert clipped["usage_gb"].isna().sum() == frame["usage_gb"].isna().sum()


def test_imputation_strategies_are_fitted_into_the_pipeline(spec):
    rule = _cleaning(
        spec,
        impute={
            "usage_gb": {"strategy": "constant", "fill_value": -1.0},
            "payment_method": {"strategy": "most_frequent"},
        },
    )
    pipeline = build_pipeline(rule)
    rules = [
        (t.named_steps["impute"].strategy, columns) for _, t, columns in pipeline.named_steps["preprocess"].transformers
    ]
    assert ("constant", ["usage_gb"]) in rules and ("most_frequent", ["payment_method"]) in rules
    model = fit(synthetic.churn_batch(1000, seed=1), rule)
    row = feature_frame(synthetic.churn_batch(1, seed=2), rule).assign(usage_gb=np.nan, payment_method=None)
    assert model.predict_proba(row).shape == (1, 2)


@pytest.mark.parametrize(
    ("cleaning", "message"),
    [
        ({"impute": {"plan": {"strategy": "median"}}}, "'median' needs a numeric column"),
        ({"impute": {"nope": {"strategy": "mean"}}}, "cleaning.impute names ['nope']"),
        ({"clip": {"plan": {"min": 0}}}, "cleaning.clip names ['plan'], not numeric features"),
        ({"clip": {"usage_gb": {}}}, "clip needs at least one bound"),
        ({"impute": {"usage_gb": {"strategy": "constant"}}}, "needs fill_value"),
    ],
)
def test_bad_cleaning_specs_are_named(cleaning, message):
    raw = yaml.safe_load(EXAMPLE_SPEC.read_text())
    raw["cleaning"] = cleaning
    with pytest.raises(SpecError) as err:
        parse_spec(yaml.safe_dump(raw))
    assert message in str(err.value)
