"""The synthetic generator: deterministic from a seed, drift shifts distributions."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_mlops.core.data import synthetic
from airflow_mlops.core.io import tables

pytestmark = pytest.mark.unit


def test_same_seed_same_batch_and_different_seed_differs():
    a = synthetic.churn_batch(500, seed=3)
    assert a.equals(synthetic.churn_batch(500, seed=3))
    assert not a.equals(synthetic.churn_batch(500, seed=4))


def test_batch_has_missing_values_both_feature_kinds_and_a_binary_label():
    frame = synthetic.churn_batch(4000, seed=1)
    assert frame["monthly_charges"].isna().mean() == pytest.approx(0.05, abs=0.015)
    assert frame["payment_method"].isna().any()
    assert set(frame["churned"].unique()) == {0, 1}
    assert frame["customer_id"].is_unique


def test_drift_shifts_numeric_means_and_category_shares():
    base = synthetic.churn_batch(5000, seed=1)
    shifted = synthetic.churn_batch(5000, seed=1, drift=1.0)
    assert shifted["usage_gb"].mean() > base["usage_gb"].mean() + 20
    assert (shifted["plan"] == "premium").mean() > (base["plan"] == "premium").mean() + 0.2
    assert (
        shifted["region"].value_counts(normalize=True).sub(base["region"].value_counts(normalize=True)).abs().max()
        < 0.03
    )


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"rows": 0}, "rows must be positive"), ({"rows": 5, "drift": -1}, "drift must be >= 0")]
)
def test_bad_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        synthetic.churn_batch(seed=1, **kwargs)


def test_land_batch_writes_a_dated_file_without_label_when_asked(tmp_path):
    landed = synthetic.land_batch(
        "churn", str(tmp_path), dt.date(2026, 3, 4), 50, seed=9, drift=0.5, include_label=False
    )
    assert landed.uri.endswith("batch-20260304-s9-drift0.5.parquet")
    frame = tables.read_table(landed.uri)
    assert len(frame) == 50 and "churned" not in frame.columns


def test_unknown_generator_is_named(tmp_path):
    with pytest.raises(ValueError, match="unknown generator 'nope'"):
        synthetic.land_batch("nope", str(tmp_path), dt.date(2026, 1, 1), 5, seed=1)


@pytest.mark.parametrize("drift", [0.0, 1.0])
def test_example_generators_give_valid_tables_at_any_drift(drift):
    houses = synthetic.houses_batch(20_000, seed=4, drift=drift)
    assert (houses["price"] > 0).all() and "id" not in " ".join(houses.columns)
    assert houses["building_age"].isna().mean() == pytest.approx(0.05, abs=0.01)
    tickets = synthetic.tickets_batch(20_000, seed=4, drift=drift)
    assert set(tickets["team"]) == set(synthetic.TEAMS) and tickets["ticket id"].is_unique
    assert {"wait time/min", "customer.age", "sentiment-score"} <= set(tickets.columns)
