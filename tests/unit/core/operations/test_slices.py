"""Slices on delayed labels: each value judged against its own test value, only with enough rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core.operations import slices
from airflow_mlops.core.registry.client import metric_name
from airflow_mlops.spec import EvaluationSpec, MonitoringSpec

pytestmark = pytest.mark.unit


class _Model:
    classes_ = np.array([0, 1])


def _rows(rng, region: str, rows: int, good: bool) -> pd.DataFrame:
    truth = rng.integers(0, 2, rows)
    score = np.clip(truth * 0.6 + rng.uniform(0, 0.4, rows), 0, 1) if good else rng.uniform(0, 1, rows)
    return pd.DataFrame(
        {"request_id": [f"{region}-{i}" for i in range(rows)], "row": 0, "prediction": (score > 0.5).astype(int),
         "score": score, "label": truth, "region": region}
    )  # fmt: skip


@pytest.fixture
def watched(spec):
    return spec.model_copy(
        update={"evaluation": EvaluationSpec(slices=["region"]), "monitoring": MonitoringSpec(min_slice_rows=100)}
    )


def _tested(*regions: str) -> dict:
    return {"region": {name: {"rows": 500, "roc_auc": 0.95, "accuracy": 0.9} for name in regions}}


def test_a_slice_worse_than_its_test_value_decays_and_one_with_too_few_rows_is_not_judged(watched):
    rng = np.random.default_rng(0)
    joined = pd.concat(
        [_rows(rng, "north", 400, good=False), _rows(rng, "south", 400, good=True), _rows(rng, "east", 60, False)],
        ignore_index=True,
    )
    check = slices.assess_slices(watched, joined, _Model(), _tested("north", "south", "east"))
    by_value = {row["value"]: row for row in check["slices"]}
    assert check["decayed"] and check["decayed_slices"] == ["region=north"] and check["judged"] == 2
    assert by_value["north"]["drop"] > 0.3 and by_value["north"]["rows"] == 400
    assert not by_value["south"]["decayed"] and by_value["south"]["drop"] < watched.monitoring.max_slice_metric_drop
    assert not by_value["east"]["decayed"] and by_value["east"]["decision"].startswith("no decision: 60 labeled row(s)")
    assert not check["retrain"]  # retrain_on_slice_decay defaults to false: an alert only
    # A lower minimum judges east too (random scores: it decays as well).
    lower = watched.model_copy(update={"monitoring": MonitoringSpec(min_slice_rows=50)})
    assert slices.assess_slices(lower, joined, _Model(), _tested("north", "south", "east"))["judged"] == 3


def test_a_missing_category_is_named_as_the_evaluation_names_it_and_a_slice_unseen_in_test_is_not_judged(watched):
    rng = np.random.default_rng(1)
    joined = pd.concat([_rows(rng, "", 200, True), _rows(rng, "new", 200, False)], ignore_index=True)
    check = slices.assess_slices(watched, joined, _Model(), {"region": {"(missing)": {"rows": 50, "roc_auc": 0.9}}})
    by_value = {row["value"]: row for row in check["slices"]}
    assert set(by_value) == {"(missing)", "new"} and by_value["(missing)"]["test_rows"] == 50
    assert by_value["new"]["decision"] == "no decision: the champion's test split had no rows of this slice"
    assert not check["decayed"]


def test_without_the_champion_slices_nothing_is_judged_and_without_slices_there_is_no_check(watched, spec):
    joined = _rows(np.random.default_rng(2), "north", 300, False)
    check = slices.assess_slices(watched, joined, _Model(), None)
    assert check["judged"] == 0 and "no per-slice test metrics" in check["decision"]
    assert slices.assess_slices(spec, joined, _Model(), None) is None  # the example spec has no slices


def test_awkward_slice_values_become_legal_metric_names(watched):
    joined = _rows(np.random.default_rng(3), "a/b (x)", 300, False)
    values = slices.slice_metric_values(slices.assess_slices(watched, joined, _Model(), _tested("a/b (x)")))
    assert values[metric_name("slice.region.a/b (x).labeled_rows")] == 300
    assert metric_name("slice.region.a/b (x).drop") in values and values["slice_decay"] == 1.0
    assert all("(" not in key and ")" not in key for key in values)  # MLflow refuses parentheses
