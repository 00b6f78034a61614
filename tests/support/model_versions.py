"""Real model versions, cheaply: one small fitted model (skops) and its ONNX graph, logged per version.

The checks before a move (``core.registry.integrity``) download and load a version's artifacts, so a
test version needs real ones. Fitting once per session and copying the files into each
version's own run keeps a version at a few tens of milliseconds.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from airflow_mlops.core.registry import integrity, tracking
from airflow_mlops.core.registry.client import Registry

# The tags ``register_candidate`` and ``gate_candidate`` set on a version that may be served.
SERVABLE = {"gate": "passed", "gate_reasons": "all gates passed", "onnx_uri": "(logged)"}


@functools.cache
def _artifacts() -> tuple[str, bytes]:
    """(a saved MLflow sklearn model folder, skops; its ONNX graph), made once per process."""
    import mlflow.sklearn

    from airflow_mlops.core.data import synthetic
    from airflow_mlops.core.model.features import InputContract
    from airflow_mlops.core.model.packaging import export_onnx
    from airflow_mlops.core.model.raw_inputs import wrap
    from airflow_mlops.core.model.training import fit
    from airflow_mlops.spec import load_spec
    from tests.conftest import EXAMPLE_SPEC

    spec = load_spec(EXAMPLE_SPEC)
    model = fit(synthetic.churn_batch(300, seed=1), spec, "logistic_regression", {"max_iter": 200})
    wrapped = wrap(model, InputContract.from_spec(spec))
    folder = os.path.join(tempfile.mkdtemp(prefix="airflow-mlops-test-model-"), "model")
    mlflow.sklearn.save_model(wrapped, folder, serialization_format="skops",
                              skops_trusted_types=tracking.trusted_types_for(wrapped))  # fmt: skip
    return folder, export_onnx(model, spec)


@functools.cache
def _empty_store() -> str:
    """An SQLite MLflow store with its tables made (a new one migrates for a second or more)."""
    path = os.path.join(tempfile.mkdtemp(prefix="airflow-mlops-test-store-"), "mlflow.db")
    Registry(f"sqlite:///{path}").client.search_experiments()
    return path


@dataclass
class Versions:
    """Makes versions of ``name`` on ``tracking_uri`` (its ``registry``), each with its own MLflow run and artifacts."""

    tracking_uri: str
    name: str
    folder: Path

    def __post_init__(self) -> None:
        path = self.tracking_uri.removeprefix("sqlite:///")
        if self.tracking_uri.startswith("sqlite:///") and not os.path.exists(path):
            shutil.copyfile(_empty_store(), path)
        self.registry = Registry(self.tracking_uri)
        mlflow_client = self.registry.client
        mlflow_client.create_registered_model(self.name)
        location = f"file://{self.folder}/artifacts"
        self.experiment_id = mlflow_client.create_experiment("versions", artifact_location=location)

    def logged_run(self, onnx: bool = True) -> tuple[str, str, str | None]:
        """A finished run holding the model (and its ONNX graph): (run id, model URI, ONNX URI)."""
        model_folder, onnx_bytes = _artifacts()
        mlflow_client = self.registry.client
        run_id = mlflow_client.create_run(self.experiment_id).info.run_id
        mlflow_client.log_artifacts(run_id, model_folder, "model")
        onnx_uri = None
        if onnx:
            with tempfile.TemporaryDirectory() as tmp:
                Path(tmp, "model.onnx").write_bytes(onnx_bytes)
                mlflow_client.log_artifact(run_id, f"{tmp}/model.onnx", "onnx")
            onnx_uri = f"runs:/{run_id}/onnx/model.onnx"
        mlflow_client.set_terminated(run_id)
        return run_id, f"runs:/{run_id}/model", onnx_uri

    def add(self, tags: dict[str, str], digests: bool = True, run: str | None = None) -> str:
        """A new version with ``tags``; an ``onnx_uri`` tag is replaced by its real graph's URI.

        ``digests`` records the artifacts' sha256 as registration does; ``run`` ("dag/run")
        sets the lineage tags of the Airflow run that registered it.
        """
        run_id, model_uri, onnx_uri = self.logged_run(onnx="onnx_uri" in tags)
        tags = {**tags, **({"onnx_uri": onnx_uri} if onnx_uri else {})}
        if digests:
            tags.update(integrity.artifact_digests(self.registry, model_uri, onnx_uri))
        if run:
            dag_id, run_name = run.split("/", 1)
            tags.update({"airflow.dag_id": dag_id, "airflow.run_id": run_name})
        mlflow_client = self.registry.client
        source = f"{mlflow_client.get_run(run_id).info.artifact_uri}/model"
        return str(mlflow_client.create_model_version(self.name, source=source, run_id=run_id, tags=tags).version)

    def artifact_path(self, version: str, relative: str) -> Path:
        """The local file of one of ``version``'s run artifacts (e.g. ``onnx/model.onnx``), to damage it."""
        mlflow_client = self.registry.client
        artifact_uri = mlflow_client.get_run(
            mlflow_client.get_model_version(self.name, version).run_id
        ).info.artifact_uri
        return Path(artifact_uri.removeprefix("file://"), relative)


def two_promoted(tmp_path: Path, name: str) -> Versions:
    """An SQLite registry where v1 was champion and v2 is (each promoted by its own run): a rollback restores v1."""
    from airflow_mlops.core.registry import promotion

    versions = Versions(f"sqlite:///{tmp_path}/mlflow.db", name, tmp_path)
    for run in ("churn_training/run-1", "churn_training/run-2"):
        promotion.promote(versions.registry, versions.name, versions.add(SERVABLE, run=run), "gate passed", run)
    return versions
