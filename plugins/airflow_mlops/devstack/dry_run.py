"""The dry training of ``airflow-mlops check``: the training DAG's stages in one process, on a sample.

Ingest, validate, split, train, evaluate, package, register and gate run as the DAG's tasks
would (the same ``core`` stage functions), with three differences that keep it quick and
harmless:

- the data is a sample of ``sample_rows`` rows: the first rows of ``--data``, else of
  ``data.source.uri`` (a ``generator://`` source generates them), else ``data.generator``'s
  synthetic rows; a spec that reads its landing inbox or a SQL query, without either, is skipped;
- the search is cut to its first trial (the first candidate, the first point of its space);
- MLflow is a throw-away SQLite store and the artifact root a temporary folder, both removed at
  the end: ``MLFLOW_TRACKING_URI``, ``MLFLOW_REGISTRY_URI`` and the ``AIRFLOW_MLOPS_*`` roots point
  there while it runs (restored after), so the real registry is never touched.

The gate's verdict is reported, not enforced: a sample's model is not the one production trains.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from airflow_mlops import layout
from airflow_mlops.devstack import processes
from airflow_mlops.spec import CandidateSpec, PipelineSpec

RUN_ID = "check__dry-run"


@contextmanager
def isolated(folder: str) -> Iterator[str]:
    """Point MLflow and every airflow-mlops root at ``folder`` inside the block; the tracking URI."""
    uri = f"sqlite:///{folder}/mlflow.db"
    roots = {layout.HOME_ENV: "home", layout.LANDING_ENV: "landing", layout.ARTIFACT_ENV: "artifacts"}
    values = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri}
    values.update({name: f"{folder}/{below}" for name, below in roots.items()})
    with processes.environment(values):
        yield uri


def write_sample(spec: PipelineSpec, rows: int, data: str | None, into: str) -> str | None:
    """A Parquet file of at most ``rows`` rows of the spec's data (see the module doc), or None when
    there is nothing to sample."""
    import pandas as pd

    from airflow_mlops.core.data.sources import read_chunks, resolve_uris
    from airflow_mlops.core.io import tables

    source = spec.data.source
    if data:  # its own suffix says its format, whatever data.source.format declares
        uris, source = [data], source.model_copy(update={"format": None})
    elif source.uri:
        uris = resolve_uris(source.uri.replace("{ds}", dt.date.today().isoformat()))
    elif spec.data.generator:
        uris = [f"generator://{spec.data.generator}?rows={rows}&seed=0"]
    else:
        return None
    chunks: list[pd.DataFrame] = []
    for uri in uris:
        for chunk in read_chunks(uri, source):
            chunks.append(chunk.head(rows - sum(len(c) for c in chunks)))
            if sum(len(c) for c in chunks) >= rows:
                break
        if sum(len(c) for c in chunks) >= rows:
            break
    frame = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()
    return tables.write_parquet(frame, f"{into}/sample.parquet")


def reduced(spec: PipelineSpec, sample_uri: str) -> PipelineSpec:
    """``spec`` reading ``sample_uri``, with its search cut to the first trial and no step cache."""
    from airflow_mlops.core.model.tuning import expand_trials

    first = expand_trials(spec)[0]
    model = spec.model.model_copy(update={"estimator": None, "params": {}, "cache": False, "candidates": [
        CandidateSpec(name=first["candidate"], estimator=first["estimator"], params=first["params"])]})  # fmt: skip
    source = spec.data.source.model_copy(update={"uri": sample_uri, "sql": None, "format": None})
    return spec.model_copy(update={"model": model, "data": spec.data.model_copy(update={"source": source})})


def _stages(spec: PipelineSpec, tracking_uri: str, steps: dict[str, float]) -> dict[str, Any]:
    """Every stage in the DAG's order; ``steps`` gets each one's seconds as it finishes."""
    import time

    from airflow_mlops.core.data import stages as data_stages
    from airflow_mlops.core.model import release
    from airflow_mlops.core.model import stages as model_stages
    from airflow_mlops.core.registry.client import Registry

    registry, lineage = Registry(tracking_uri), {"dag_id": f"{spec.name}_training", "run_id": RUN_ID}
    out: dict[str, Any] = {}

    def step(name: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        steps[name] = -1.0  # started: the failing step is the one still at -1
        started = time.perf_counter()
        out[name] = call(*args, **kwargs)
        steps[name] = time.perf_counter() - started
        return out[name]

    dataset = step("ingest", data_stages.ingest_labeled, spec, RUN_ID)
    validation = step("validate", data_stages.validate_dataset, spec, dataset, RUN_ID)
    split = step("split", data_stages.split_dataset, spec, dataset, RUN_ID)
    training = step("train", model_stages.train_model, spec, registry, split, dataset, lineage, False, 1)
    test = split["test"]["uri"]
    evaluation = step("evaluate", model_stages.evaluate_candidate, spec, registry, training, test)
    package = step("package", model_stages.package_candidate, spec, registry, training, test)
    registered = step("register", release.register_candidate, spec, registry, training, evaluation, dataset,
                      split, lineage, package, validation)  # fmt: skip
    step("gate", release.gate_candidate, spec, registry, registered, evaluation, package, validation)
    return out


def dry_train(spec: PipelineSpec, sample_rows: int, data: str | None) -> tuple[str, str, str]:
    """(status OK | FAIL | SKIP, one-line summary, details) of the dry training of ``spec``."""
    from airflow_mlops.core.model.threads import limit_threads

    steps: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="airflow-mlops-check-") as folder, isolated(folder) as uri:
        try:
            sample = write_sample(spec, sample_rows, data, f"{folder}/sample")
            if sample is None:
                what = "a SQL query" if spec.data.source.sql is not None else "its landing inbox"
                return "SKIP", f"the spec reads {what}: give a labeled sample with --data FILE", ""
            with limit_threads(1):
                out = _stages(reduced(spec, sample), uri, steps)
        except Exception as exc:
            failed = next((name for name, seconds in steps.items() if seconds < 0), "sample")
            why = f"{type(exc).__name__}: {exc}".strip().splitlines()
            return "FAIL", f"{failed} failed: {' '.join(why)[:300]}", traceback.format_exc(limit=8)
    gate, rows = out["gate"], out["ingest"]["rows"]
    timing = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in steps.items())
    verdict = "would promote" if gate["promote"] else f"would not promote ({'; '.join(gate['reasons'])[:200]})"
    return "OK", f"{rows} rows, {out['train']['winner']['label']}: {timing}; gate {verdict}", ""
