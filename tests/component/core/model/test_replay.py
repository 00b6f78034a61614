"""The offline replay on a real registry and a real prediction log written by the serving app.

The champion (v1) answers requests through the serving app in process (its log is the real
writer's); delayed labels arrive for some of them. A twin of the champion (v2) replays with full
agreement and equal metrics and becomes the challenger; a model that learned next to nothing (v3)
is held by the replay's conditions, the reason naming them. Both reports are logged on the
candidate's run and tagged on its version.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from airflow_mlops import layout
from airflow_mlops.core.model.replay import REPLAY_TAG, replay_and_challenge
from airflow_mlops.core.registry import promotion, tracking
from airflow_mlops.core.registry.client import CHALLENGER_ALIAS
from airflow_mlops.serving.app import build_app
from airflow_mlops.serving.config import ServeConfig
from airflow_mlops.serving.inprocess import call
from airflow_mlops.spec import load_spec, parse_spec
from tests.component.serving.test_app import _rows
from tests.conftest import EXAMPLE_SPEC
from tests.support.model_versions import SERVABLE, Versions

pytestmark = pytest.mark.component

MODEL = "churn_classifier"


def _weak_version(versions: Versions) -> str:
    """A servable version whose model learned almost nothing (strong regularisation): other scores, other classes."""
    import mlflow.sklearn

    from airflow_mlops.core.data import synthetic
    from airflow_mlops.core.model.features import InputContract
    from airflow_mlops.core.model.raw_inputs import wrap
    from airflow_mlops.core.model.training import fit

    spec = load_spec(EXAMPLE_SPEC)
    frame = synthetic.churn_batch(300, seed=3)
    frame["churned"] = np.where(np.arange(len(frame)) % 10 == 0, 1, 0)  # almost all one class
    wrapped = wrap(fit(frame, spec, "logistic_regression", {"C": 1e-6, "max_iter": 50}), InputContract.from_spec(spec))
    client = versions.registry.client
    run_id = client.create_run(versions.experiment_id).info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "model")
        mlflow.sklearn.save_model(wrapped, folder, serialization_format="skops",
                                  skops_trusted_types=tracking.trusted_types_for(wrapped))  # fmt: skip
        client.log_artifacts(run_id, folder, "model")
    client.set_terminated(run_id)
    source = f"{client.get_run(run_id).info.artifact_uri}/model"
    return str(client.create_model_version(MODEL, source=source, run_id=run_id, tags={"gate": "passed"}).version)


def _spec(**replay: object):
    raw = yaml.safe_load(EXAMPLE_SPEC.read_text())
    raw["rollout"] = {"replay": {"enabled": True, "min_rows": 50, "min_labeled_rows": 20, **replay},
                      "shadow": {"enabled": True}}  # fmt: skip
    return parse_spec(yaml.safe_dump(raw))


def _gate(version: str) -> dict:
    return {"promote": True, "reasons": ["all gates passed"], "metric": "roc_auc", "candidate": 0.8, "champion": 0.79,
            "champion_version": "1", "name": MODEL, "version": version}  # fmt: skip


def test_a_twin_replays_in_agreement_and_a_weak_model_is_held(mlops_home: Path, tmp_path: Path):
    versions = Versions(f"sqlite:///{tmp_path}/mlflow.db", MODEL, tmp_path)
    for run in ("churn_training/run-1", "churn_training/run-2"):
        versions.add(SERVABLE, run=run)
    promotion.promote(versions.registry, MODEL, "1", "first champion", "test")
    weak = _weak_version(versions)

    # The champion answers 300 rows through the serving app; labels arrive for the first 100.
    app = build_app(ServeConfig(spec_path=str(EXAMPLE_SPEC), tracking_uri=versions.tracking_uri, require_token=False))

    async def serve() -> list[dict]:
        await app.startup()
        try:
            bodies = [json.dumps({"instances": _rows(100, seed=s)}).encode() for s in (11, 12, 13)]
            return [json.loads((await call(app, "POST", "/v1/predict", body))[2]) for body in bodies]
        finally:
            await app.shutdown()

    answers = asyncio.run(serve())
    first = answers[0]
    labels = pd.DataFrame({"request_id": first["request_id"], "row": range(100),
                           "churned": np.random.default_rng(0).integers(0, 2, 100)})  # fmt: skip
    Path(layout.labels_dir("churn")).mkdir(parents=True, exist_ok=True)
    labels.to_parquet(Path(layout.labels_dir("churn")) / "labels-1.parquet")

    spec = _spec(min_agreement=0.9, max_score_psi=0.5, max_metric_drop=0.2)
    twin = replay_and_challenge(spec, versions.registry, _gate("2"))
    assert twin["promote"] and twin["replay"]["passed"] and twin["replay"]["rows"] == 300
    assert twin["replay"]["agreement"] == pytest.approx(1.0) and twin["replay"]["score_psi"] == pytest.approx(
        0, abs=1e-6
    )
    assert twin["replay"]["labeled_rows"] == 100 and twin["replay"]["metric_drop"] == pytest.approx(0, abs=1e-9)
    client = versions.registry.client
    report = json.loads(client.get_model_version(MODEL, "2").tags[REPLAY_TAG])
    assert report["champion_metric"] == pytest.approx(report["candidate_metric"]) and report["judged"]
    run = client.get_run(client.get_model_version(MODEL, "2").run_id)
    assert run.data.metrics["replay_rows"] == 300 and run.data.metrics["replay_agreement"] == pytest.approx(1.0)
    assert str(client.get_model_version_by_alias(MODEL, CHALLENGER_ALIAS).version) == "2"

    held = replay_and_challenge(spec, versions.registry, _gate(weak))
    assert not held["promote"] and not held["replay"]["passed"]
    assert "rollout.replay" in held["reasons"][0] and held["reasons"][-1] == "all gates passed"
    assert held["replay"]["score_psi"] > 0.5 or held["replay"]["agreement"] < 0.9
    assert json.loads(client.get_model_version(MODEL, weak).tags[REPLAY_TAG])["passed"] is False
    assert str(client.get_model_version_by_alias(MODEL, CHALLENGER_ALIAS).version) == "2"  # a held one is no challenger
