"""MLflow dataset inputs of a run: which data a training or monitoring run saw, as MLflow shows it.

Each dataset is logged by reference (its URI is the source, never its rows) with our content
fingerprint as MLflow's digest and the ``mlflow.data.context`` input tag: ``train``,
``validation``, ``test`` for a training run, ``reference`` and ``current`` for a monitoring
run. Through the ``Registry``'s own ``MlflowClient`` (``log_inputs``), never the fluent API.
Logging the same dataset on the same run again (a retried task reusing its run) adds nothing:
MLflow keys a dataset by experiment, name and digest and links it to a run once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

CONTEXT_TAG = "mlflow.data.context"  # mlflow.utils.mlflow_tags.MLFLOW_DATASET_CONTEXT
DIGEST_LIMIT = 36  # MLflow's SQL stores keep 36 characters of a digest


@dataclass(frozen=True)
class RunDataset:
    """One dataset a run read: its MLflow name, where it is, our fingerprint, its rows, its role."""

    name: str
    uri: str
    digest: str
    context: str
    rows: int | None = None
    files: Sequence[str] = ()  # a dataset of several files (a monitoring run's logs): all of them


def source_type(uri: str) -> str:
    """MLflow's source type for a URI: ``local`` for paths and ``file://``, else the scheme (``s3``, ...)."""
    scheme = urlsplit(uri).scheme
    return "local" if len(scheme) <= 1 or scheme == "file" else scheme


def split_datasets(pipeline: str, split: Mapping[str, Any]) -> list[RunDataset]:
    """A training run's datasets: the parts of the split task's result, each with its fingerprint."""
    return [
        RunDataset(f"{pipeline}.{part}", split[part]["uri"], str(split[part]["fingerprint"]), part,
                   split[part].get("rows"))
        for part in ("train", "validation", "test") if part in split
    ]  # fmt: skip


def files_dataset(name: str, uris: Sequence[str], digest: str, context: str, rows: int | None) -> RunDataset:
    """One dataset of several files: its source is the one file, or the folder they share (all listed)."""
    if len(uris) == 1:
        return RunDataset(name, uris[0], digest, context, rows)
    shared: list[str] = []
    for components in zip(*(uri.split("/")[:-1] for uri in uris), strict=False):  # the folders, not the names
        if len(set(components)) > 1:
            break
        shared.append(components[0])
    folder = "/".join(shared) or "/"
    return RunDataset(name, folder, digest, context, rows, files=tuple(uris))


def log_run_datasets(registry: Any, run_id: str, datasets: Sequence[RunDataset]) -> None:
    """Log ``datasets`` as the inputs of MLflow run ``run_id`` (``MlflowClient.log_inputs``)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    inputs = []
    for found in datasets:
        source: dict[str, Any] = {"uri": found.uri}
        if found.files:
            source["files"] = list(found.files)[:100]
        profile = json.dumps({"num_rows": found.rows}) if found.rows is not None else None
        dataset = Dataset(
            name=found.name,
            digest=found.digest[:DIGEST_LIMIT],
            source_type=source_type(found.uri),
            source=json.dumps(source),
            profile=profile,
        )
        inputs.append(DatasetInput(dataset, tags=[InputTag(CONTEXT_TAG, found.context)]))
    if inputs:
        registry.client.log_inputs(run_id, datasets=inputs)
