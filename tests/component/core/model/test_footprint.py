"""Packaging measures the candidate's latency, size and memory, and the gate holds them to the spec's limits.

Against a real MLflow store (SQLite): a small model is trained and packaged by the stages, the
figures are checked against the files on disk, and a limit the model breaks keeps it from promotion
with the figure and the limit in the reasons, the ``gate_verdict`` tag and the model card.
"""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from airflow_mlops import layout
from airflow_mlops.core.data import stages as data_stages
from airflow_mlops.core.data import synthetic
from airflow_mlops.core.landing import inbox as landing
from airflow_mlops.core.model import release
from airflow_mlops.core.model import stages as model_stages
from airflow_mlops.core.model.footprint import folder_bytes
from airflow_mlops.core.registry.client import Registry
from airflow_mlops.spec import ModelSpec, RequirementsSpec

pytestmark = pytest.mark.component


@pytest.fixture
def packaged(spec, mlops_home):
    """A logistic regression trained on 800 churn rows, packaged: (spec, registry, training, package, parts)."""
    spec = spec.model_copy(update={"model": ModelSpec(estimator="logistic_regression", params={"max_iter": 300},
                                                      registered_name="churn_classifier")})  # fmt: skip
    synthetic.land_batch("churn", layout.landing_dir(spec.name, "training"), dt.date(2026, 1, 1), 800, seed=3)
    landing.claim_new_files(layout.landing_dir(spec.name, "training"), layout.lake_dir(spec.name, "labeled"),
                            (".parquet",))  # fmt: skip
    registry = Registry(f"sqlite:///{mlops_home}/mlflow.db")
    dataset = data_stages.ingest_labeled(spec, "run-1")
    split = data_stages.split_dataset(spec, dataset, "run-1")
    lineage = {"dag_id": "churn_training", "run_id": "run-1"}
    training = model_stages.train_model(spec, registry, split, dataset, lineage)
    package = model_stages.package_candidate(spec, registry, training, split["test"]["uri"])
    return spec, registry, training, package, (dataset, split, lineage)


def test_the_figures_are_plausible_and_match_the_files_on_disk(packaged, tmp_path):
    _, registry, training, package, _ = packaged
    figures = package["nfr"]
    assert package["nfr_unmeasured"] == {}
    assert 0 < figures["latency_p50_ms"] <= figures["latency_p99_ms"] < 1000
    assert 0 < figures["batch_latency_p50_ms"] <= figures["batch_latency_p99_ms"] < 1000
    assert figures["latency_calls"] >= 200 and figures["batch_latency_calls"] >= 50
    assert (figures["batch_rows"], figures["threads"]) == (100, 1)
    # A call for 100 rows costs more than a call for one row.
    assert figures["batch_latency_p50_ms"] > figures["latency_p50_ms"]
    model_dir = registry.download(training["model_uri"], str(tmp_path / "model"))
    assert figures["model_bytes"] == folder_bytes(model_dir) > 0
    assert os.path.isfile(os.path.join(model_dir, "MLmodel"))
    onnx = registry.download(str(package["onnx_uri"]), str(tmp_path / "onnx"))
    assert figures["onnx_bytes"] == os.path.getsize(onnx) > 0
    # The probe process holds Python, numpy and ONNX Runtime: tens of MB; one prediction adds far less.
    assert 20e6 < figures["process_peak_rss_bytes"] < 2e9
    assert 0 <= figures["prediction_memory_bytes"] < figures["process_peak_rss_bytes"]
    logged = registry.client.get_run(training["run_id"]).data.metrics
    assert logged["nfr_latency_p99_ms"] == pytest.approx(figures["latency_p99_ms"])
    assert logged["nfr_model_bytes"] == figures["model_bytes"]


def _gate(packaged, requirements: RequirementsSpec):
    spec, registry, training, package, (dataset, split, lineage) = packaged
    spec = spec.model_copy(update={"promotion": spec.promotion.model_copy(update={"requirements": requirements})})
    evaluation = {"candidate": {"roc_auc": 0.9}, "champion": None, "champion_error": None,
                  "champion_version": None, "slices": {}, "importance": {}}  # fmt: skip
    registered = release.register_candidate(spec, registry, training, evaluation, dataset, split, lineage, package)
    gate = release.gate_candidate(spec, registry, registered, evaluation, package)
    version = registry.client.get_model_version(registered["name"], registered["version"])
    return gate, version


def test_a_candidate_over_a_limit_is_registered_but_not_promoted_and_says_by_how_much(packaged):
    figures = packaged[3]["nfr"]
    gate, version = _gate(packaged, RequirementsSpec(max_p99_latency_ms=1e-6, max_model_mb=1000.0))
    assert not gate["promote"]
    (reason,) = [r for r in gate["reasons"] if "latency" in r]
    assert reason == (f"p99 latency (1 row) {figures['latency_p99_ms']:.4g} ms exceeds "
                      "promotion.requirements.max_p99_latency_ms = 1e-06 ms")  # fmt: skip
    assert not any("model size" in r for r in gate["reasons"])  # within its limit
    verdict = json.loads(version.tags["gate_verdict"])
    assert verdict["nfr"]["latency_p99_ms"] == pytest.approx(figures["latency_p99_ms"])
    assert verdict["requirements"]["max_p99_latency_ms"]["passed"] is False
    size = {"limit": 1000.0, "value": pytest.approx(figures["model_bytes"] / 1e6), "unit": "MB", "passed": True,
            "why": None}  # fmt: skip
    assert verdict["requirements"]["max_model_mb"] == size
    assert version.tags["gate"] == "failed"
    assert "exceeds promotion.requirements.max_p99_latency_ms" in version.tags["gate_reasons"]
    assert "## Latency, size and memory" in version.description
    assert "| max_p99_latency_ms | 1e-06 ms |" in version.description and "FAILED" in version.description


def test_without_limits_the_figures_are_measured_not_gated(packaged):
    gate, version = _gate(packaged, RequirementsSpec())
    assert gate["promote"], gate["reasons"]
    verdict = json.loads(version.tags["gate_verdict"])
    assert verdict["requirements"] == {} and verdict["nfr"]["onnx_bytes"] > 0
    assert "No `promotion.requirements` limit set: measured, not gated." in version.description
