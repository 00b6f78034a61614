"""OpenLineage events of real tasks: ``dag.test()`` of ingest -> split -> train -> evaluate -> register
with the OpenLineage provider's file transport, on a real Airflow database and MLflow store.

The events are the provider's own (its listener calls each operator's
``get_openlineage_facets_on_*``, ``operators.lineage``), written by openlineage-python's
``FileTransport`` and read back here. Also asserted: the training run's MLflow dataset inputs
carry the split's fingerprints as digests (``core.registry.datasets``).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import EXAMPLE_SPEC
from tests.support.airflow_db import AirflowHome, migrated_database

pytestmark = pytest.mark.component

DAG_FILE = """
import datetime as dt

from airflow.sdk import DAG

from airflow_mlops.operators.data import IngestLabeledDataOperator, SplitDataOperator
from airflow_mlops.operators.model import EvaluateModelOperator, TrainModelOperator
from airflow_mlops.operators.release import RegisterModelOperator

common = {{"spec_path": {spec!r}, "mlflow_conn_id": "mlflow_lineage", "retries": 0}}
with DAG("lineage_training", schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False) as dag:
    ingest = IngestLabeledDataOperator(task_id="ingest", **common)
    split = SplitDataOperator(task_id="split", dataset=ingest.output, **common)
    train = TrainModelOperator(task_id="train", dataset=ingest.output, split=split.output, **common)
    evaluate = EvaluateModelOperator(task_id="evaluate", training=train.output, split=split.output, **common)
    register = RegisterModelOperator(task_id="register", training=train.output, evaluation=evaluate.output,
                                     dataset=ingest.output, split=split.output, **common)
"""


def small_spec(folder: Path) -> Path:
    """The example spec with one quick candidate (the lineage, not the model, is under test)."""
    document = yaml.safe_load(EXAMPLE_SPEC.read_text())
    document["model"]["candidates"] = [{"estimator": "logistic_regression", "params": {"max_iter": 200}}]
    document["packaging"] = {**document.get("packaging", {}), "onnx": "off"}
    path = folder / "churn.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture(scope="module")
def emitted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Land two labeled batches, run the DAG with the file transport; the events by task and type."""
    import os

    from airflow_mlops import layout
    from airflow_mlops.core.data import synthetic
    from airflow_mlops.core.landing import inbox

    root = tmp_path_factory.mktemp("lineage")
    home_env = {"AIRFLOW_MLOPS_HOME": str(root / "mlops")}
    saved = {k: os.environ.get(k) for k in ("AIRFLOW_MLOPS_HOME", "AIRFLOW_MLOPS_ARTIFACT_ROOT",
                                            "AIRFLOW_MLOPS_LANDING_ROOT")}  # fmt: skip
    os.environ.update(home_env)
    for key in ("AIRFLOW_MLOPS_ARTIFACT_ROOT", "AIRFLOW_MLOPS_LANDING_ROOT"):
        os.environ.pop(key, None)
    try:
        landing, lake = layout.landing_dir("churn", "training"), layout.lake_dir("churn", "labeled")
        for day in (1, 2):
            synthetic.land_batch("churn", landing, dt.date(2026, 1, day), 600, day)
        claimed = inbox.claim_new_files(landing, lake, (".parquet",))
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    spec = small_spec(root)
    tracking = f"sqlite:///{root}/mlflow.db"
    home = AirflowHome(root / "airflow", migrated_database(root / "template"),
                       {"mlflow_lineage": {"conn_type": "mlflow", "host": tracking}})  # fmt: skip
    dag_file = home.folder / "dags" / "lineage_training.py"
    dag_file.write_text(DAG_FILE.format(spec=str(spec)))
    events_file = root / "openlineage.jsonl"
    transport = {"type": "file", "log_file_path": str(events_file), "append": True}
    run = home.run("test-dags", {"dag_files": [str(dag_file)], "answers": {}}, timeout=600,
                   extra_env={**home_env, "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport)})  # fmt: skip
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    by_task: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:
        job = event["job"]["name"]
        if job.startswith("lineage_training."):
            by_task[(job.split(".", 1)[1], event["eventType"])] = event
    return {"run": run["lineage_training"], "events": by_task, "claimed": claimed, "tracking": tracking}


def _datasets(event: dict[str, Any], side: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["namespace"], d["name"]): d for d in event[side]}


def test_the_pipeline_ran_and_each_task_emitted_start_and_complete(emitted):
    assert emitted["run"]["states"] == dict.fromkeys(("ingest", "split", "train", "evaluate", "register"),
                                                     "success"), emitted["run"]  # fmt: skip
    for task in ("ingest", "split", "train", "evaluate", "register"):
        assert (task, "START") in emitted["events"] and (task, "COMPLETE") in emitted["events"], task


def test_ingest_reads_the_landed_files_and_writes_the_dataset_with_its_rows_and_fingerprint(emitted):
    event = emitted["events"][("ingest", "COMPLETE")]
    inputs, outputs = _datasets(event, "inputs"), _datasets(event, "outputs")
    assert set(inputs) == {("file", uri.removeprefix("file://")) for uri in emitted["claimed"]}
    assert all(d["inputFacets"]["dataQualityMetrics"]["rowCount"] == 600 for d in inputs.values())
    (dataset,) = [d for (ns, name), d in outputs.items() if name.endswith(".parquet")]
    assert dataset["namespace"] == "file" and "/churn/" in dataset["name"]
    assert dataset["outputFacets"]["outputStatistics"]["rowCount"] == 1200
    fingerprint = dataset["facets"]["mlops_fingerprint"]["fingerprint"]
    assert len(fingerprint) == 16 and dataset["facets"]["version"]["datasetVersion"] == fingerprint
    assert any(name.endswith("profile.json") for _, name in outputs)


def test_split_and_train_chain_through_the_same_dataset_names(emitted):
    ingest_out = _datasets(emitted["events"][("ingest", "COMPLETE")], "outputs")
    split = emitted["events"][("split", "COMPLETE")]
    assert set(_datasets(split, "inputs")) <= set(ingest_out)
    parts = _datasets(split, "outputs")
    assert len(parts) == 3 and sum(d["outputFacets"]["outputStatistics"]["rowCount"] for d in parts.values()) == 1200
    train = emitted["events"][("train", "COMPLETE")]
    train_inputs = _datasets(train, "inputs")
    assert {key for key in parts if not key[1].split("/")[-1].startswith("test")} <= set(train_inputs)
    (run,) = _datasets(train, "outputs").values()
    assert run["name"].startswith("runs/") and run["facets"]["mlops_mlflow_run"]["run_id"] == run["name"][5:]


def test_register_writes_the_model_version_with_its_run_id_and_version(emitted):
    event = emitted["events"][("register", "COMPLETE")]
    (version,) = _datasets(event, "outputs").values()
    assert version["namespace"] == emitted["tracking"] and version["name"] == "models/churn_classifier/1"
    facet = version["facets"]["mlops_model_version"]
    train_run = next(iter(_datasets(emitted["events"][("train", "COMPLETE")], "outputs").values()))
    assert facet["name"] == "churn_classifier" and facet["version"] == "1"
    assert facet["run_id"] == train_run["facets"]["mlops_mlflow_run"]["run_id"]
    assert set(_datasets(event, "inputs")) >= {(train_run["namespace"], train_run["name"])}


def test_the_start_event_already_names_the_inputs(emitted):
    start = emitted["events"][("split", "START")]
    complete = emitted["events"][("split", "COMPLETE")]
    assert _datasets(start, "inputs").keys() == _datasets(complete, "inputs").keys() and not start["outputs"]


def test_the_training_run_shows_its_datasets_in_mlflow_with_our_fingerprints(emitted):
    from airflow_mlops.core.registry.client import Registry

    registry = Registry(emitted["tracking"])
    split = _datasets(emitted["events"][("split", "COMPLETE")], "outputs")
    fingerprints = {d["facets"]["mlops_fingerprint"]["fingerprint"] for d in split.values()}
    version = registry.client.get_model_version("churn_classifier", "1")
    inputs = registry.client.get_run(version.run_id).inputs.dataset_inputs
    seen = {(i.dataset.name, i.dataset.digest, {t.key: t.value for t in i.tags}["mlflow.data.context"]) for i in inputs}
    assert {context for _, _, context in seen} == {"train", "validation", "test"}
    assert {digest for _, digest, _ in seen} == fingerprints
    assert {name for name, _, _ in seen} == {"churn.train", "churn.validation", "churn.test"}


LISTENERS = """
import json, sys
import airflow_mlops.operators.data, airflow_mlops.operators.model, airflow_mlops.operators.release  # noqa: E401
import airflow_mlops.operators.operations, airflow_mlops.operators.approval  # noqa: E401
client = "openlineage.client.event_v2" in sys.modules  # what importing the operators loaded

from airflow.listeners.listener import get_listener_manager
from airflow.plugins_manager import integrate_listener_plugins
from airflow.providers.openlineage import conf

manager = get_listener_manager()
integrate_listener_plugins(manager)
names = [type(p).__name__ for p in manager.pm.get_plugins()]
print(json.dumps({"disabled": conf.is_disabled(), "listeners": names, "openlineage_client": client}))
"""


@pytest.mark.parametrize("configured", [False, True], ids=["no transport", "file transport"])
def test_without_a_transport_the_provider_is_disabled_and_registers_no_listener(tmp_path, configured):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__OPENLINEAGE", "OPENLINEAGE"))}
    repo = EXAMPLE_SPEC.parents[2]
    path = os.pathsep.join([str(repo / "plugins"), str(repo)])
    env.update({"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PYTHONPATH": path})
    if configured:
        env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps({"type": "file", "log_file_path": str(tmp_path / "ol")})
    done = subprocess.run([sys.executable, "-c", LISTENERS], env=env, capture_output=True, text=True, timeout=120,
                          check=True)  # fmt: skip
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["disabled"] is not configured
    assert ("OpenLineageListener" in found["listeners"]) is configured, found
    # Importing the operators (the DAG parse path) loads no OpenLineage client either way.
    assert found["openlineage_client"] is False
