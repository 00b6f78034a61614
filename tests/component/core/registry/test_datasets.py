"""core.registry.datasets on a real MLflow store (SQLite): the datasets a training and a monitoring
run saw, with our fingerprints as MLflow digests and their context tags."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from airflow_mlops import layout
from airflow_mlops.core.data import stages as data_stages
from airflow_mlops.core.data import synthetic
from airflow_mlops.core.landing import inbox
from airflow_mlops.core.model import release
from airflow_mlops.core.model import stages as model_stages
from airflow_mlops.core.operations import stages as operate_stages
from airflow_mlops.core.registry.client import Registry
from airflow_mlops.core.registry.datasets import log_run_datasets, split_datasets
from airflow_mlops.spec import load_spec
from tests.conftest import EXAMPLE_SPEC

pytestmark = pytest.mark.component


def _inputs(registry: Registry, run_id: str) -> dict[str, tuple[str, str, str]]:
    """context -> (name, digest, source) of the run's dataset inputs."""
    found = {}
    for item in registry.client.get_run(run_id).inputs.dataset_inputs:
        context = {tag.key: tag.value for tag in item.tags}["mlflow.data.context"]
        found[context] = (item.dataset.name, item.dataset.digest, item.dataset.source)
    return found


@pytest.fixture
def small_spec(tmp_path):
    document = yaml.safe_load(EXAMPLE_SPEC.read_text())
    document["model"]["candidates"] = [{"estimator": "logistic_regression", "params": {"max_iter": 200}}]
    path = tmp_path / "churn.yaml"
    path.write_text(yaml.safe_dump(document))
    return load_spec(path)


def test_training_and_monitoring_runs_show_the_data_they_saw_with_our_fingerprints(small_spec, mlops_home):
    spec = small_spec
    registry = Registry(f"sqlite:///{mlops_home}/mlflow.db")
    synthetic.land_batch("churn", layout.landing_dir("churn", "training"), dt.date(2026, 1, 1), 800, 1)
    inbox.claim_new_files(layout.landing_dir("churn", "training"), layout.lake_dir("churn", "labeled"), (".parquet",))
    dataset = data_stages.ingest_labeled(spec, "run-1")
    split = data_stages.split_dataset(spec, dataset, "run-1")
    lineage = {"dag_id": "churn_training", "run_id": "run-1"}
    training = model_stages.train_model(spec, registry, split, dataset, lineage)
    seen = _inputs(registry, training["run_id"])
    assert seen == {part: (f"churn.{part}", split[part]["fingerprint"], f'{{"uri": "{split[part]["uri"]}"}}')
                    for part in ("train", "validation", "test")}  # fmt: skip

    # A retried task logs the same datasets on the same run again: still one input each.
    log_run_datasets(registry, training["run_id"], split_datasets(spec.name, split))
    assert len(registry.client.get_run(training["run_id"]).inputs.dataset_inputs) == 3

    evaluation = model_stages.evaluate_candidate(spec, registry, training, split["test"]["uri"])
    package = model_stages.package_candidate(spec, registry, training, split["test"]["uri"])
    registered = release.register_candidate(spec, registry, training, evaluation, dataset, split, lineage, package)
    gate = release.gate_candidate(spec, registry, registered, evaluation, package)
    release.promote_candidate(registry, gate, by="test")
    synthetic.land_batch("churn", layout.landing_dir("churn", "scoring"), dt.date(2026, 1, 8), 500, 5, 0.5)
    claimed = inbox.claim_new_files(layout.landing_dir("churn", "scoring"), layout.lake_dir("churn", "scoring"),
                                    (".parquet",))  # fmt: skip
    summary = operate_stages.score_batches(spec, registry, claimed, "score-1")
    result = operate_stages.monitor_drift(spec, registry, summary["prediction_log_uris"], "monitor-1")

    monitored = _inputs(registry, result["mlflow_run_id"])
    assert set(monitored) == {"reference", "current"}
    assert monitored["reference"][:2] == ("churn.train", split["train"]["fingerprint"])
    name, digest, source = monitored["current"]
    assert name == "churn.predictions" and len(digest) == 16
    assert summary["prediction_log_uris"][0] in source
    current = next(i for i in registry.client.get_run(result["mlflow_run_id"]).inputs.dataset_inputs
                   if i.dataset.name == "churn.predictions")  # fmt: skip
    assert '"num_rows": 500' in current.dataset.profile
    # The result names what the monitor read, for the OpenLineage event.
    assert result["reference_uri"] == split["train"]["uri"] and result["current_uris"] == summary["prediction_log_uris"]
