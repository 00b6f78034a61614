"""Candidates and searches expand into trials deterministically; the best trial is chosen by the metric."""

from __future__ import annotations

import pytest

from airflow_mlops.core.model.tuning import expand_trials, select_best
from airflow_mlops.spec import ModelSpec, SpecError, parse_spec

pytestmark = pytest.mark.unit


def with_model(spec, **model):
    return spec.model_copy(update={"model": ModelSpec(**model)})


def test_grid_and_plain_candidates_expand_in_order(spec):
    tuned = with_model(
        spec,
        candidates=[
            {"estimator": "hist_gradient_boosting", "params": {"max_iter": 50},
             "search": {"space": {"learning_rate": [0.05, 0.1], "max_depth": [3, None]}}},
            {"name": "linear", "estimator": "logistic_regression"},
        ],
    )  # fmt: skip
    trials = expand_trials(tuned)
    assert [t["trial"] for t in trials] == [0, 1, 2, 3, 4]
    assert trials[0]["params"] == {"max_iter": 50, "learning_rate": 0.05, "max_depth": 3}
    assert trials[3]["label"] == "hist_gradient_boosting[learning_rate=0.1,max_depth=None]"
    assert trials[4]["label"] == "linear" and trials[4]["params"] == {}
    assert expand_trials(tuned) == trials  # stable across calls (and so across task retries)


def test_random_search_is_seeded_and_draws_inside_the_bounds(spec):
    tuned = with_model(
        spec,
        seed=7,
        candidates=[
            {"estimator": "random_forest", "search": {"method": "random", "n_iter": 6, "space": {
                "n_estimators": {"randint": [10, 50]}, "max_features": {"uniform": [0.2, 0.9]},
                "min_samples_leaf": [1, 5, 10], "ccp_alpha": {"loguniform": [1e-5, 1e-2]}}}},
        ],
    )  # fmt: skip
    trials = expand_trials(tuned)
    assert len(trials) == 6 and expand_trials(tuned) == trials
    for trial in trials:
        params = trial["params"]
        assert 10 <= params["n_estimators"] < 50 and isinstance(params["n_estimators"], int)
        assert 0.2 <= params["max_features"] <= 0.9 and 1e-5 <= params["ccp_alpha"] <= 1e-2
        assert params["min_samples_leaf"] in (1, 5, 10)
    assert len({t["label"] for t in trials}) == 6
    other_seed = with_model(spec, seed=8, candidates=tuned.model.model_dump()["candidates"])
    assert expand_trials(other_seed) != trials


def test_single_estimator_is_one_trial(spec):
    single = with_model(spec, estimator="hist_gradient_boosting", params={"max_iter": 20})
    (trial,) = expand_trials(single)
    assert trial["label"] == "hist_gradient_boosting" and trial["params"] == {"max_iter": 20}


def test_best_trial_follows_the_metric_direction_and_ties_go_to_the_first():
    results = [
        {"trial": 0, "metrics": {"roc_auc": 0.80, "log_loss": 0.50}},
        {"trial": 1, "metrics": {"roc_auc": 0.85, "log_loss": 0.40}},
        {"trial": 2, "metrics": {"roc_auc": 0.85, "log_loss": 0.45}},
        {"trial": 3, "metrics": {"roc_auc": float("nan"), "log_loss": 0.30}},
    ]
    assert select_best(results, "roc_auc")["trial"] == 1  # NaN never wins, the tie goes to trial 1
    assert select_best(results, "log_loss")["trial"] == 3  # lower is better
    with pytest.raises(ValueError, match="no trial produced a finite 'rmse'"):
        select_best(results, "rmse")


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"estimator": "ridge", "candidates": [{"estimator": "lasso"}]}, "not both"),
        ({}, "model needs an estimator or a list of candidates"),
        ({"candidates": [{"estimator": "x"}], "params": {"a": 1}}, "model.params go with model.estimator"),
        ({"candidates": [{"estimator": "x", "search": {"space": {"a": []}}}]}, "search.space.a is an empty list"),
        ({"candidates": [{"estimator": "x", "search": {"space": {"a": {"uniform": [0, 1]}}}}]},
         "a grid takes a list of values"),
        ({"candidates": [{"estimator": "x", "search": {"method": "random", "space": {"a": {"normal": [0, 1]}}}}]},
         "use one of uniform, loguniform, randint"),
        ({"candidates": [{"estimator": "x", "search": {"method": "random", "space": {"a": {"loguniform": [0, 1]}}}}]},
         "low > 0 for log"),
        ({"max_trials": 3, "candidates": [{"estimator": "x", "search": {"space": {"a": [1, 2], "b": [1, 2]}}}]},
         "expand into 4 trials, more than model.max_trials (3)"),
        ({"estimator": "ridge", "selection_metric": "rmse"}, "metrics ['rmse']"),
    ],
)  # fmt: skip
def test_model_section_mistakes_are_named(model, message):
    import json

    text = json.dumps(
        {"name": "mm", "data": {"id_column": "id", "label": "y", "features": {"numeric": ["a"]}}, "model": model}
    )
    with pytest.raises(SpecError) as err:
        parse_spec(text, source="m.yaml")
    assert message in str(err.value)


def test_labels_are_unique_and_fit_airflow_map_index(spec):
    twins = with_model(spec, candidates=[{"estimator": "random_forest"}, {"estimator": "random_forest"}])
    assert [t["label"] for t in expand_trials(twins)] == ["random_forest", "random_forest#2"]
    long = with_model(
        spec, candidates=[{"estimator": "random_forest", "search": {"space": {"class_weight": ["x" * 300, "y"]}}}]
    )
    labels = [t["label"] for t in expand_trials(long)]
    assert all(len(label) <= 203 for label in labels) and len(set(labels)) == 2
