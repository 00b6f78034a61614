"""The example pipelines next to churn, each under a real Airflow scheduler and MLflow server.

tickets: four string classes and column names with spaces, '/', '.' and '-'; houses: regression
with no id column (rows split by their fingerprint, labels joined by request id). For each: a labeled
batch lands in the training inbox -> training DAG -> champion -> ``airflow-mlops serve`` answers
real rows -> a batch lands in the scoring inbox -> scoring DAG -> its rows are in the prediction
log. The served answers equal those of the registered model loaded the plain MLflow way.
"""

from __future__ import annotations

import os

import mlflow
import pandas as pd
import pytest

from airflow_mlops import layout
from airflow_mlops.core.io import tables
from airflow_mlops.devstack.demo import DemoLoop
from airflow_mlops.devstack.stack import Stack, StackConfig
from airflow_mlops.spec import load_spec

pytestmark = pytest.mark.integration

EXAMPLES = ("tickets.yaml", "houses.yaml")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("examples")
    environment = dict(os.environ)  # DemoLoop points this process's airflow-mlops roots at the stack
    running = Stack(StackConfig(root=root, airflow_port=8797, mlflow_port=5797)).start()
    try:
        yield running
    finally:
        running.stop()
        os.environ.clear()
        os.environ.update(environment)


@pytest.mark.parametrize("spec_file", EXAMPLES)
def test_example_lands_trains_serves_and_scores_under_the_scheduler(stack, spec_file, monkeypatch):
    loop = DemoLoop(stack, rows=3000, say=print, spec_file=spec_file)
    result = loop.land_train_serve_score()
    assert result.failures == []
    spec = load_spec(loop.spec_path)
    assert [(r["dag_id"], r["state"]) for r in result.runs] == [
        (f"{spec.name}_training", "success"),
        (f"{spec.name}_scoring", "success"),
    ]
    served = result.serving
    assert served is not None and served["model_version"] == result.champion == "1"

    # The registered version answers the same raw rows the same way, loaded the plain MLflow way.
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    # MLflow's process-wide URIs, for this load only (restored after): an earlier test of this
    # process may have left a registry URI of its own, which models:/ URIs would resolve against.
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    monkeypatch.setattr(registry_utils, "_registry_uri", None)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    mlflow.set_tracking_uri(stack.config.mlflow_url)
    mlflow.set_registry_uri(stack.config.mlflow_url)
    rows = pd.DataFrame.from_records(served["rows"])
    model_uri = f"models:/{spec.registered_model_name}/{served['model_version']}"
    answered = mlflow.pyfunc.load_model(model_uri).predict(rows).tolist()
    if spec.model.task == "regression":  # the app runs the ONNX graph in float32: parity's own bound
        assert answered == pytest.approx(served["predictions"], rel=1e-4)
    else:
        assert answered == served["predictions"]
    if spec.model.task == "classification":
        classes = [str(c) for c in mlflow.sklearn.load_model(model_uri).classes_]
        if len(classes) > 2:
            assert [sorted(p) for p in served["probabilities"]] == [sorted(classes)] * len(rows)

    # The scoring run logged one row per landed row, under the user's column names.
    log_dir = layout.prediction_log_dir(spec.name)
    scored = [tables.read_table(str(p)) for p in stack.config.root.rglob("*.parquet") if str(p).startswith(log_dir)]
    batch_logs = [t for t in scored if set(t["source_uri"]) != {"serving"}]
    assert sum(len(t) for t in batch_logs) == 3000
    assert set(spec.data.features.all) <= set(batch_logs[0].columns)
