"""Registering a candidate is idempotent: a retry, even after a kill mid-registration, reuses the version.

A SIGKILL right after MLflow created the model version (before the task could save its
result) used to leave an orphan version that the retry did not see: a second version of
the same training run, and the orphan, never gated, counted by the "already trained" cache.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_mlops.core.model import release
from airflow_mlops.core.registry import integrity
from airflow_mlops.core.registry.client import Registry
from tests.support.faults import At, run_killed_at
from tests.support.model_versions import Versions

pytestmark = pytest.mark.component


@pytest.fixture
def candidate(tmp_path, spec):
    """The arguments ``register_candidate`` gets from upstream tasks, for a real logged run."""
    versions = Versions(f"sqlite:///{tmp_path}/mlflow.db", spec.registered_model_name, tmp_path)
    run_id, model_uri, onnx_uri = versions.logged_run()
    return (
        spec,
        versions.registry,
        {"run_id": run_id, "model_uri": model_uri},
        {"candidate": {"roc_auc": 0.81}},
        {"fingerprint": "d" * 16},
        {"train": {"fingerprint": "t" * 16, "uri": "/lake/train"}, "test": {"fingerprint": "e" * 16, "uri": "/x"}},
        {"dag_id": "churn_training", "run_id": "run-1", "task_id": "model.register"},
        {"onnx_uri": onnx_uri, "parity": {"max_abs_diff": 1e-7, "passed": True}},
    )


def _versions(registry: Registry, name: str) -> list[str]:
    return sorted(str(v.version) for v in registry.client.search_model_versions(f"name='{name}'"))


def test_a_register_task_killed_after_the_version_was_created_reuses_it_on_retry(candidate):
    spec, registry = candidate[0], candidate[1]
    name = spec.registered_model_name
    run_killed_at(At("_create_model_version"), release.register_candidate, *candidate)
    assert _versions(registry, name) == ["1"]  # created, then killed before the result was saved
    assert release.register_candidate(*candidate) == {"name": name, "version": "1"}
    assert _versions(registry, name) == ["1"]
    assert registry.versions_trained_on(name, "d" * 16, spec.fingerprint()) == ["1"]
    tags = registry.client.get_model_version(name, "1").tags
    assert tags["onnx_uri"] == candidate[7]["onnx_uri"] and tags["airflow.run_id"] == "run-1"
    # The sha256 of the files as stored, checked again before the version may become champion.
    run_files = Path(registry.client.get_run(candidate[2]["run_id"]).info.artifact_uri.removeprefix("file://"))
    assert tags[integrity.MODEL_DIGEST_TAG] == integrity.sha256_file(str(run_files / "model" / "model.skops"))
    assert tags[integrity.ONNX_DIGEST_TAG] == integrity.sha256_file(str(run_files / "onnx" / "model.onnx"))


def test_a_retried_register_sets_the_tags_it_would_set_on_the_version_it_reuses(candidate):
    spec, registry, *_ = candidate
    name = spec.registered_model_name
    release.register_candidate(*candidate)
    mlflow_client = registry.client
    mlflow_client.delete_model_version_tag(name, "1", "onnx_uri")  # e.g. a version created without them
    mlflow_client.set_model_version_tag(name, "1", "test_roc_auc", "0.5")
    assert release.register_candidate(*candidate)["version"] == "1"
    tags = mlflow_client.get_model_version(name, "1").tags
    assert tags["onnx_uri"] == candidate[7]["onnx_uri"] and tags["test_roc_auc"] == "0.810000"
    assert _versions(registry, name) == ["1"]


def test_register_logs_the_validation_report_on_the_training_run(candidate, tmp_path):
    import json

    report = {"success": True, "evaluated": 3, "results": [{"expectation": "expect_column_to_exist"}]}
    (tmp_path / "report.json").write_text(json.dumps(report))
    validation = {"uri": "/x", "report_uri": str(tmp_path / "report.json"), "evaluated": 3, "inferred": 0,
                  "warnings": 0, "batch_warnings": {}}  # fmt: skip
    registry, run_id = candidate[1], candidate[2]["run_id"]
    release.register_candidate(*candidate, validation)
    logged = registry.client.download_artifacts(run_id, release.VALIDATION_ARTIFACT, str(tmp_path / "got"))
    assert json.loads(Path(logged).read_text()) == report


def test_a_validation_report_that_is_gone_does_not_block_registering(candidate, tmp_path):
    validation = {"uri": "/x", "report_uri": str(tmp_path / "gone.json"), "evaluated": 3, "inferred": 0,
                  "warnings": 0, "batch_warnings": {}}  # fmt: skip
    assert release.register_candidate(*candidate, validation)["version"] == "1"
    files = [f.path for f in candidate[1].client.list_artifacts(candidate[2]["run_id"], "validation")]
    assert files == []
