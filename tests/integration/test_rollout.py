"""The offline replay and the challenger under a real Airflow scheduler and MLflow server.

The churn pipeline alone, with ``rollout.replay`` and ``rollout.shadow`` on. A small first batch
trains the first champion (its replay has no champion to compare with: reported, not judged);
the serving app (shadow on) answers real rows and logs them; a large second batch trains a
candidate that the gate lets through (five times the data), whose ``model.replay`` task replays
it on exactly the rows the champion answered, tags the version, names it ``challenger`` and hands
the verdict to ``model.promote``.
"""

from __future__ import annotations

import datetime as dt
import json
import os

import httpx
import pandas as pd
import pytest
import yaml

from airflow_mlops.core.data import synthetic
from airflow_mlops.core.registry.client import CHALLENGER_ALIAS, Registry
from airflow_mlops.devstack.demo import DemoLoop
from airflow_mlops.devstack.stack import Stack, StackConfig, single_pipeline_project

pytestmark = pytest.mark.integration

ROLLOUT = {"replay": {"enabled": True, "min_rows": 50, "min_agreement": 0.3}, "shadow": {"enabled": True, "share": 1.0}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    base = tmp_path_factory.mktemp("rollout")
    dags, pipelines = single_pipeline_project(base / "project")
    spec_path = pipelines / "churn.yaml"
    raw = yaml.safe_load(spec_path.read_text())
    raw["rollout"] = ROLLOUT
    spec_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    environment = dict(os.environ)
    cfg = StackConfig(root=base / "stack", dags_folder=dags, pipelines_folder=pipelines,
                      airflow_port=8741, mlflow_port=5741)  # fmt: skip
    running = Stack(cfg).start()
    try:
        yield running
    finally:
        running.stop()
        os.environ.clear()
        os.environ.update(environment)


def test_a_candidate_is_replayed_on_the_champions_logged_rows_and_becomes_the_challenger(stack):
    demo = DemoLoop(stack, rows=600, say=print)
    demo._prepare()
    demo._land("training", dt.date(2026, 11, 2), seed=1, drift=0.0)
    first = demo._await_run("training", "asset_triggered")
    assert first["state"] == "success", demo.result.runs[-1]["tasks"]
    name = demo.spec.registered_model_name
    registry = Registry(stack.config.mlflow_url)
    assert str(registry.champion(name).version) == "1"
    first_replay = demo.client.xcom(demo.dags["training"], first["dag_run_id"], "model.replay")
    assert first_replay["replay"]["judged"] is False  # no champion yet: nothing to compare with

    # The champion answers 5 + 200 real rows through the serving app; SIGTERM writes its log.
    demo._serve()
    served = demo.result.serving
    rows = synthetic.land_batch("churn", str(stack.config.root / "more-requests"), dt.date(2026, 11, 3), 200, seed=4,
                                include_label=False, label=demo.spec.data.label)  # fmt: skip
    body = {"instances": json.loads(pd.read_parquet(rows.uri).to_json(orient="records"))}
    auth = {"Authorization": f"Bearer {served['token']}"}
    answer = httpx.post(f"{served['url']}/v1/predict", json=body, headers=auth)
    assert answer.status_code == 200 and answer.json()["model_version"] == "1"
    demo.stop_serving()

    demo.rows = 5000
    demo._land("training", dt.date(2026, 11, 4), seed=2, drift=0.0)
    second = demo._await_run("training", "asset_triggered")
    tasks = demo.result.runs[-1]["tasks"]
    assert second["state"] == "success", tasks
    assert tasks["model.gate"] == tasks["model.replay"] == tasks["model.promote"] == "success", tasks
    replayed = demo.client.xcom(demo.dags["training"], second["dag_run_id"], "model.replay")
    assert replayed["promote"] and replayed["version"] == "2"
    figures = replayed["replay"]
    assert figures["judged"] and figures["passed"] and figures["rows"] == 205
    assert 0.3 <= figures["agreement"] <= 1.0 and figures["score_psi"] is not None
    version = registry.client.get_model_version(name, "2")
    report = json.loads(version.tags["replay"])
    assert report["champion_version"] == "1" and report["rows"] == 205
    run = registry.client.get_run(version.run_id)
    assert run.data.metrics["replay_rows"] == 205 and "replay_score_psi" in run.data.metrics
    assert str(registry.client.get_model_version_by_alias(name, CHALLENGER_ALIAS).version) == "2"
    assert str(registry.champion(name).version) == "2"
