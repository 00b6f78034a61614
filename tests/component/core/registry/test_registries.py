"""Two registries in one process: each call goes to its own store, and MLflow's process-wide
tracking URI is never left pointing at either (real SQLite stores, a real small model)."""

from __future__ import annotations

import os

import pytest

from airflow_mlops.core.registry import promotion, tracking
from tests.support.model_versions import SERVABLE, Versions

pytestmark = pytest.mark.component


def test_two_registries_never_mix_and_leave_mlflows_process_uri_alone(tmp_path, spec, mlops_home, monkeypatch):
    from mlflow.tracking._tracking_service import utils as tracking_utils

    from airflow_mlops.core.data import synthetic
    from airflow_mlops.core.model.features import InputContract
    from airflow_mlops.core.model.raw_inputs import wrap
    from airflow_mlops.core.model.training import fit

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before = tracking_utils._tracking_uri
    first = Versions(f"sqlite:///{tmp_path}/first.db", spec.registered_model_name, tmp_path / "first")
    second = Versions(f"sqlite:///{tmp_path}/second.db", spec.registered_model_name, tmp_path / "second")
    promotion.promote(first.registry, first.name, first.add(SERVABLE, run="churn_training/run-1"), "gate", "test")
    assert str(first.registry.champion(first.name).version) == "1" and second.registry.champion(second.name) is None

    # Logging a model is the call MLflow makes through its process-wide URI: it lands in ``second`` only.
    frame = synthetic.churn_batch(300, seed=1)
    model = wrap(fit(frame, spec, "logistic_regression", {"max_iter": 200}), InputContract.from_spec(spec))
    logged = tracking.log_training_run(
        second.registry, "elsewhere", "r1", model, frame[spec.data.features.all].head(20), {"p": 1}, {"t": "x"},
        metrics={"m": 0.5}, json_artifacts={"data/x.json": {"k": 1}},
    )  # fmt: skip
    run = second.registry.client.get_run(logged.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["m"] == 0.5 and run.data.tags["t"] == "x"
    assert run.info.run_name == "r1" and "mlflow.user" in run.data.tags  # the tags mlflow.start_run added
    assert first.registry.client.get_experiment_by_name("elsewhere") is None
    assert tracking_utils._tracking_uri == before and "MLFLOW_TRACKING_URI" not in os.environ
    version = second.registry.register(second.name, logged.model_uri, {"k": "v"}, run_id=logged.run_id)
    assert second.registry.client.get_model_version(second.name, version).run_id == logged.run_id
    loaded = tracking.load_model(second.registry, f"models:/{second.name}/{version}", raw_inputs=True)
    assert loaded.predict(frame[spec.data.features.all].head(5)).shape == (5,)
    assert first.registry.registered_from_run(first.name, logged.run_id) is None
    assert tracking_utils._tracking_uri == before
