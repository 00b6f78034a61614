"""Splits: ratios respected, deterministic, keys kept together, time order kept."""

from __future__ import annotations

import pandas as pd
import pytest

from airflow_mlops.core.data import synthetic
from airflow_mlops.core.data.splitting import split_frame
from airflow_mlops.spec import SplitSpec

pytestmark = pytest.mark.unit


def _with_split(spec, **rule):
    return spec.model_copy(update={"split": SplitSpec(**rule)})


def _shares(parts):
    total = sum(len(p) for p in parts.values())
    return {name: len(part) / total for name, part in parts.items()}


@pytest.mark.parametrize("method", ["hash", "random", "stratified"])
def test_ratios_are_respected_and_reruns_are_identical(spec, method):
    rule = _with_split(spec, method=method, ratios={"train": 0.6, "validation": 0.2, "test": 0.2})
    frame = synthetic.churn_batch(5000, seed=1)
    first, second = split_frame(frame, rule), split_frame(frame, rule)
    assert set(first) == {"train", "validation", "test"}
    for name, share in _shares(first).items():
        assert share == pytest.approx(rule.split.ratios[name], abs=0.02)
        assert first[name]["customer_id"].tolist() == second[name]["customer_id"].tolist()
    assert sum(len(p) for p in first.values()) == len(frame)


def test_hash_split_keeps_each_key_in_one_split_as_data_grows(spec):
    day1, day2 = synthetic.churn_batch(2000, seed=1), synthetic.churn_batch(2000, seed=2)
    before = split_frame(day1, spec)
    after = split_frame(pd.concat([day1, day2], ignore_index=True), spec)
    assert set(before["test"]["customer_id"]) <= set(after["test"]["customer_id"])
    assert not set(before["train"]["customer_id"]) & set(after["test"]["customer_id"])


def test_group_split_keeps_groups_together(spec):
    frame = synthetic.churn_batch(3000, seed=1)
    rule = _with_split(spec, method="hash", key="region")
    parts = split_frame(frame.assign(region=frame["customer_id"].str[-2:]), rule)
    groups = [set(part["customer_id"].str[-2:]) for part in parts.values()]
    assert not groups[0] & groups[1]


def test_stratified_split_keeps_label_shares(spec):
    frame = synthetic.churn_batch(4000, seed=1)
    parts = split_frame(frame, _with_split(spec, method="stratified"))
    for part in parts.values():
        assert part["churned"].mean() == pytest.approx(frame["churned"].mean(), abs=0.005)


def test_time_split_trains_on_the_past_and_tests_on_the_future(spec):
    frame = synthetic.churn_batch(1000, seed=1)
    frame["event_date"] = pd.date_range("2026-01-01", periods=1000, freq="h")
    parts = split_frame(
        frame.sample(frac=1, random_state=3), _with_split(spec, method="time", time_column="event_date")
    )
    assert parts["train"]["event_date"].max() < parts["test"]["event_date"].min()
    assert len(parts["test"]) == 250


def test_bad_columns_and_tiny_inputs_are_named(spec):
    frame = synthetic.churn_batch(100, seed=1)
    with pytest.raises(ValueError, match=r"split\.time_column 'when' is not in the data"):
        split_frame(frame, _with_split(spec, method="time", time_column="when"))
    with pytest.raises(ValueError, match="need at least 4 labeled rows"):
        split_frame(frame.head(3), spec)
    with pytest.raises(ValueError, match=r"split left \['test'\] empty"):
        split_frame(frame.head(4).assign(customer_id="same"), _with_split(spec, ratios={"train": 0.9, "test": 0.1}))
