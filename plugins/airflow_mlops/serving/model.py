"""The champion as the serving app runs it: its ONNX graph in an ONNX Runtime session.

The registry's ``champion`` alias names the version; the version's ``onnx_uri`` tag (set
at registration only when ONNX parity with scikit-learn passed) names the graph. A
version without it cannot be served, and loading refuses a graph whose inputs do not
match the spec's model inputs, so a wrong model is never swapped in. The tag is fetched
only from the registry's own artifact locations (``check_artifact_location``): whoever can
set a tag cannot make the server read another file or host.

From a tracking server (``http(s)://``) the version and its graph are read over MLflow's
REST API (``serving.registry_rest``), so a serving process never imports ``mlflow`` (nor
the pandas and SciPy it brings); a database tracking URI, or a store or auth setting only
MLflow's client handles, goes through the client (``MlflowRegistry``).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from airflow_mlops import layout
from airflow_mlops.core.model.features import graph_classes, graph_input_names, onnx_session
from airflow_mlops.core.registry import locations as artifact_locations
from airflow_mlops.core.registry.client import Registry
from airflow_mlops.serving.payload import InputSchema
from airflow_mlops.serving.registry_rest import RestRegistry, VersionRecord, serves_over_rest
from airflow_mlops.spec import PipelineSpec


class ModelLoadError(RuntimeError):
    """The champion cannot be served (no champion, no ONNX graph, inputs that do not fit)."""


@dataclass(frozen=True)
class ServedModel:
    """One loaded model version; immutable, so a request keeps the one it started with.

    ``feed_names`` pairs each model input column with the graph input it feeds (the graph's
    own mapping, see ``core.model.features``); ``classes`` are a classifier's labels in the
    order of its probability columns.
    """

    name: str
    version: str
    run_id: str
    task: str
    onnx_uri: str
    session: Any
    input_types: dict[str, str]
    loaded_at: str
    feed_names: tuple[tuple[str, str], ...] = ()
    classes: tuple[Any, ...] | None = None

    @property
    def multiclass(self) -> bool:
        return self.classes is not None and len(self.classes) > 2

    @functools.cached_property
    def class_labels(self) -> tuple[str, ...] | None:
        """The class labels as text (answer keys, log map keys): made once per loaded model, not per request."""
        return None if self.classes is None else tuple(str(c) for c in self.classes)

    def predict(self, feeds: dict[str, np.ndarray]) -> Prediction:
        """Labels (or regression values), scores and, for more than two classes, every class's probability.

        ``feeds`` are keyed by model input column. A classifier's score is the probability of
        its second class when it has two, else the probability of the predicted class.
        """
        graph_feeds = {graph: feeds[column] for column, graph in self.feed_names} if self.feed_names else feeds
        outputs = self.session.run(None, graph_feeds)
        if self.task == "classification" and len(outputs) > 1:
            labels = np.asarray(outputs[0]).reshape(-1)
            probabilities = np.asarray(outputs[1], dtype=np.float64)
            if probabilities.shape[1] > 2:
                return labels, probabilities.max(axis=1), probabilities
            return labels, probabilities[:, -1], None
        return np.asarray(outputs[0], dtype=np.float64).reshape(-1), None, None

    def describe(self) -> dict[str, Any]:
        described = {
            "model_name": self.name,
            "model_version": self.version,
            "run_id": self.run_id,
            "task": self.task,
            "onnx_uri": self.onnx_uri,
            "inputs": {column: self.input_types[graph] for column, graph in self.feed_names} or self.input_types,
            "loaded_at": self.loaded_at,
        }
        if self.classes is not None:
            described["classes"] = list(self.classes)
        return described


Prediction = tuple[np.ndarray, np.ndarray | None, np.ndarray | None]


def champion_version(registry: Registry, name: str) -> str | None:
    """The version the ``champion`` alias points at now (one registry call), or None."""
    current = registry.champion(name)
    return None if current is None else str(current.version)


def check_artifact_location(
    onnx_uri: str, run_id: str, run_artifacts: Callable[[], str | None], artifact_root: str, tracking_uri: str
) -> None:
    """Refuse an ``onnx_uri`` outside the registry's own artifact locations (``core.registry.locations``).

    Raises ``ModelLoadError`` naming what was refused and why.
    """
    why = artifact_locations.refusal(onnx_uri, run_id, run_artifacts, artifact_root, tracking_uri)
    if why is not None:
        raise ModelLoadError(why)


class MlflowRegistry:
    """The reads of one model load through the MLflow client: a database tracking URI, a graph in a
    store ``RestRegistry`` does not read, a server that needs the client's auth plugins. Same
    methods as ``RestRegistry``."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._client = registry.client

    def champion(self, name: str) -> VersionRecord | None:
        current = self.registry.champion(name)
        return None if current is None else _record(current)

    def version(self, name: str, version: str) -> VersionRecord:
        return _record(self._client.get_model_version(name, version))

    def run_artifact_uri(self, run_id: str) -> str | None:
        return self._client.get_run(run_id).info.artifact_uri

    def read(self, uri: str, run_id: str) -> bytes:
        with tempfile.TemporaryDirectory(prefix="airflow-mlops-serve-") as tmp:
            path = self.registry.download(uri, tmp)
            with open(path if os.path.isfile(path) else os.path.join(path, "model.onnx"), "rb") as handle:
                return handle.read()

    def close(self) -> None:
        pass


def _record(version: Any) -> VersionRecord:
    return VersionRecord(str(version.version), str(version.run_id or ""), dict(version.tags))


def _fetch_graph(registry: Registry, name: str, version: str | None) -> tuple[VersionRecord, str, bytes]:
    """(the version, its ``onnx_uri``, the graph's bytes): read over REST when the tracking URI
    allows it (``registry_rest``: no MLflow import in the serving process), else by the MLflow client."""
    tracking_uri = registry.tracking_uri
    source: RestRegistry | MlflowRegistry = (
        RestRegistry(tracking_uri) if serves_over_rest(tracking_uri) else MlflowRegistry(registry)
    )
    try:
        current = source.champion(name) if version is None else source.version(name, version)
        if current is None:
            raise ModelLoadError(f"model '{name}' has no champion yet; run the training DAG first")
        onnx_uri = current.tags.get("onnx_uri")
        if not onnx_uri:
            raise ModelLoadError(
                f"{name} v{current.version} has no ONNX graph that passed parity (tag onnx_uri); "
                "it cannot be served: set packaging.onnx to required and retrain"
            )
        try:
            check_artifact_location(
                onnx_uri,
                current.run_id,
                lambda: source.run_artifact_uri(current.run_id) if current.run_id else None,
                layout.artifact_root(),
                tracking_uri,
            )
        except ModelLoadError as exc:
            raise ModelLoadError(f"{name} v{current.version}: {exc}") from None
        onnx_bytes = source.read(onnx_uri, current.run_id)
        if onnx_bytes is None:  # a store only the MLflow client reads
            onnx_bytes = MlflowRegistry(registry).read(onnx_uri, current.run_id)
    finally:
        source.close()
    return current, onnx_uri, onnx_bytes


def load_version(
    registry: Registry, spec: PipelineSpec, schema: InputSchema, version: str | None = None, threads: int = 1
) -> ServedModel:
    """Load ``version`` of the spec's model (default: the champion) for serving."""
    name = spec.registered_model_name
    current, onnx_uri, onnx_bytes = _fetch_graph(registry, name, version)
    try:
        session = onnx_session(onnx_bytes, threads)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelLoadError(f"{name} v{current.version}: ONNX Runtime cannot load {onnx_uri}: {exc}") from exc
    input_types = {i.name: i.type for i in session.get_inputs()}
    metadata = session.get_modelmeta().custom_metadata_map
    try:
        names = graph_input_names(metadata, list(input_types))
    except ValueError as exc:
        raise ModelLoadError(f"{name} v{current.version}: {onnx_uri}: {exc}") from exc
    expected = set(schema.model_inputs)
    if set(names) != expected:
        raise ModelLoadError(
            f"{name} v{current.version} takes inputs {sorted(names)} but the spec's model inputs are "
            f"{sorted(expected)}: serve it with the spec it was trained with"
        )
    wrong = [
        c for c in schema.model_inputs
        if input_types[names[c]] != ("tensor(string)" if c in schema.categorical else "tensor(float)")
    ]  # fmt: skip
    if wrong:
        raise ModelLoadError(f"{name} v{current.version}: inputs {wrong} have types the spec does not declare")
    classes = graph_classes(metadata)
    if spec.model.task == "classification" and classes is None:
        probability_columns = session.get_outputs()[-1].shape[-1] if len(session.get_outputs()) > 1 else None
        if isinstance(probability_columns, int) and probability_columns > 2:
            raise ModelLoadError(
                f"{name} v{current.version}: a graph of {probability_columns} classes without its class labels "
                "(exported before they were recorded): retrain to serve it"
            )
    return ServedModel(
        name=name,
        version=str(current.version),
        run_id=current.run_id,
        task=spec.model.task,
        onnx_uri=onnx_uri,
        session=session,
        input_types=input_types,
        loaded_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        feed_names=tuple((c, names[c]) for c in schema.model_inputs),
        classes=classes,
    )
