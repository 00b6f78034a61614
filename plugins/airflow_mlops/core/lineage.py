"""The datasets each task result names: what a task read and wrote, read off its XCom contract.

One row per contract kind (``KINDS``): what a task that takes such a result as a parameter
reads (``read``), and what the task that returned it read and wrote (``wrote``). The rows give
``Ref`` values (an OpenLineage namespace and name, row count, fingerprint, MLflow ids), plain
Python with no OpenLineage or Airflow in it; ``operators.lineage`` turns them into the
OpenLineage provider's datasets and facets. Adding a contract is one row here and one
``Lineage(...)`` declaration on its operator.

Dataset names follow the OpenLineage naming spec: a local path or ``file:///p`` is namespace
``file``, name ``/p``; ``s3://bucket/key`` is namespace ``s3://bucket``, name ``key``; a model
version is namespace = the MLflow tracking URI (credentials redacted), name
``models/<name>/<version>``; an MLflow run is ``runs/<run id>``; the ``champion`` alias of a
model is ``models/<name>@champion``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from airflow_mlops.core.redaction import MASK, redact

CHAMPION = "champion"


@dataclass(frozen=True)
class Ref:
    """One dataset of a task: where it is (namespace, name) and what we know of it."""

    namespace: str
    name: str
    rows: int | None = None
    fingerprint: str | None = None
    model: Mapping[str, str] | None = None  # a model version: name, version, run_id
    run: Mapping[str, str] | None = None  # an MLflow run: run_id, experiment_id, model_uri

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name


@dataclass
class Facts:
    """What a kind's row may need beyond the contract itself.

    :param tracking_uri: the MLflow tracking URI, or a function giving it: called only when a row
        names a model or a run (a task that names files never looks its connection up). Its
        credentials are redacted in ``tracking``, the namespace of models and runs.
    :param upstream: the task's upstream results by parameter name (resolved XComArgs).
    :param model_name: the pipeline's registered model name, asked only when a row needs it.
    """

    tracking_uri: str | Callable[[], str] = "mlflow"
    upstream: Mapping[str, Any] = field(default_factory=dict)
    model_name: Callable[[], str | None] = lambda: None

    @cached_property
    def tracking(self) -> str:
        uri = self.tracking_uri() if callable(self.tracking_uri) else self.tracking_uri
        return redact(uri).replace(f"{MASK}@", "")


def uri_ref(uri: str, rows: int | None = None, fingerprint: str | None = None) -> Ref:
    """A file or object by URI, named as the OpenLineage naming spec says (userinfo dropped)."""
    parts = urlsplit(uri)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if not parts.scheme or len(parts.scheme) == 1:  # a path (or a Windows drive letter)
        return Ref("file", os.path.abspath(uri), rows, fingerprint)
    if parts.scheme == "file":
        return Ref(f"file://{netloc}" if netloc and netloc != "localhost" else "file", parts.path, rows, fingerprint)
    if netloc:  # s3://bucket/key, gs://bucket/key, hdfs://host/path, ...
        return Ref(redact(f"{parts.scheme}://{netloc}"), parts.path.lstrip("/") or "/", rows, fingerprint)
    return Ref(parts.scheme, parts.path, rows, fingerprint)  # mlflow-artifacts:/..., runs:/...


def model_ref(facts: Facts, name: str, version: str, run_id: str | None = None) -> Ref:
    model = {"name": name, "version": str(version), **({"run_id": run_id} if run_id else {})}
    return Ref(facts.tracking, f"models/{name}/{version}", model=model)


def run_ref(facts: Facts, run_id: str, **details: str | None) -> Ref:
    run = {"run_id": run_id, **{k: str(v) for k, v in details.items() if v}}
    return Ref(facts.tracking, f"runs/{run_id}", run=run)


def champion_ref(facts: Facts, name: str, version: str | None) -> Ref:
    model = {"name": name, "alias": CHAMPION, **({"version": str(version)} if version else {})}
    return Ref(facts.tracking, f"models/{name}@{CHAMPION}", model=model)


Read = Callable[[Any, Facts], list[Ref]]
Wrote = Callable[[Any, Facts], tuple[list[Ref], list[Ref]]]


@dataclass(frozen=True)
class Kind:
    """A contract kind: what a reader of it reads, what its producer read and wrote."""

    read: Read = lambda result, facts: []
    wrote: Wrote = lambda result, facts: ([], [])


def _parts(split: Mapping[str, Any], names: Sequence[str] = ("train", "validation", "test")) -> list[Ref]:
    return [uri_ref(split[n]["uri"], split[n].get("rows"), split[n].get("fingerprint")) for n in names if n in split]


def _dataset_wrote(ref: Mapping[str, Any], facts: Facts) -> tuple[list[Ref], list[Ref]]:
    rows = ref.get("rows_by_source") or {}
    inputs = [uri_ref(uri, rows.get(uri)) for uri in ref.get("sources", [])]
    outputs = [uri_ref(ref["uri"], ref.get("rows"), ref.get("fingerprint"))]
    if ref.get("profile_uri"):
        outputs.append(uri_ref(ref["profile_uri"]))
    return inputs, outputs


def _registered_wrote(registered: Mapping[str, Any], facts: Facts) -> tuple[list[Ref], list[Ref]]:
    training = facts.upstream.get("training") or {}
    return [], [model_ref(facts, registered["name"], registered["version"], training.get("run_id"))]


def _promotion_wrote(record: Mapping[str, Any], facts: Facts) -> tuple[list[Ref], list[Ref]]:
    gate = facts.upstream.get("gate") or {}
    name = gate.get("name") or facts.model_name()
    if not name:
        return [], []
    to = record.get("to_version")
    return ([model_ref(facts, name, to)] if to else []), [champion_ref(facts, name, to)]


def _score_wrote(summary: Mapping[str, Any], facts: Facts) -> tuple[list[Ref], list[Ref]]:
    logs = list(summary.get("prediction_log_uris", []))
    rows = summary.get("rows") if len(logs) == 1 else None  # the total is per run, not per file
    inputs = [uri_ref(uri) for uri in summary.get("inputs", [])]
    inputs.append(model_ref(facts, summary["model_name"], summary["model_version"]))
    outputs = [uri_ref(uri, rows) for uri in logs] + [uri_ref(u) for u in summary.get("labeled_feedback_uris", [])]
    return inputs, outputs


def _monitor_wrote(result: Mapping[str, Any], facts: Facts) -> tuple[list[Ref], list[Ref]]:
    name = facts.model_name()
    inputs = [model_ref(facts, name, result["model_version"])] if name and result.get("model_version") else []
    if result.get("reference_uri"):
        inputs.append(uri_ref(result["reference_uri"]))
    current = list(result.get("current_uris", []))
    rows = result.get("current_rows") if len(current) == 1 else None
    inputs += [uri_ref(uri, rows) for uri in current]
    outputs = [uri_ref(result[key]) for key in ("report_uri", "html_report_uri") if result.get(key)]
    if result.get("mlflow_run_id"):
        outputs.append(run_ref(facts, result["mlflow_run_id"]))
    return inputs, outputs


def _training_run(training: Mapping[str, Any], facts: Facts) -> list[Ref]:
    return [run_ref(facts, training["run_id"], experiment_id=training.get("experiment_id"),
                    model_uri=training.get("model_uri"))]  # fmt: skip


def _version_of(result: Mapping[str, Any], facts: Facts) -> list[Ref]:
    return [model_ref(facts, result["name"], result["version"])] if result.get("name") else []


KINDS: dict[str, Kind] = {
    "uri": Kind(read=lambda r, f: [uri_ref(r)]),  # a parameter holding a URI (``test_uri=``)
    # data
    "dataset": Kind(read=lambda r, f: [uri_ref(r["uri"], r.get("rows"), r.get("fingerprint"))], wrote=_dataset_wrote),
    "validation": Kind(
        read=lambda r, f: [uri_ref(r["report_uri"])],
        wrote=lambda r, f: ([uri_ref(r["uri"])], [uri_ref(r["report_uri"])]),
    ),
    "split": Kind(read=lambda r, f: _parts(r), wrote=lambda r, f: ([], _parts(r))),
    "split.test": Kind(read=lambda r, f: _parts(r, ("test",))),
    "split.train": Kind(read=lambda r, f: _parts(r, ("train", "validation"))),
    # model
    "trials": Kind(
        read=lambda r, f: [run_ref(f, r[0]["parent_run_id"])] if r else [],
        wrote=lambda r, f: (
            [],
            [run_ref(f, r[0]["parent_run_id"], experiment_id=r[0].get("experiment_id"))] if r else [],
        ),
    ),
    "trial": Kind(read=lambda r, f: [run_ref(f, r["parent_run_id"])] if r.get("parent_run_id") else []),
    "trial_result": Kind(wrote=lambda r, f: ([], [run_ref(f, r["run_id"], experiment_id=r.get("experiment_id"))])),
    "training": Kind(read=_training_run, wrote=lambda r, f: ([], _training_run(r, f))),
    "package": Kind(
        read=lambda r, f: [uri_ref(r["onnx_uri"])] if r.get("onnx_uri") else [],
        wrote=lambda r, f: ([], [uri_ref(r["onnx_uri"])] if r.get("onnx_uri") else []),
    ),
    "evaluation": Kind(),
    # release
    "registered": Kind(read=_version_of, wrote=_registered_wrote),
    "gate": Kind(read=_version_of, wrote=lambda r, f: (_version_of(r, f), [])),
    "promotion": Kind(
        read=lambda r, f: [model_ref(f, n, r["to_version"])] if r.get("to_version") and (n := f.model_name()) else [],
        wrote=_promotion_wrote,
    ),
    "deploy": Kind(wrote=lambda r, f: ([model_ref(f, r["model"], r["version"])] if r.get("model") else [], [])),
    # operations
    "score": Kind(wrote=_score_wrote),
    "monitor": Kind(read=lambda r, f: [uri_ref(r["report_uri"])] if r.get("report_uri") else [], wrote=_monitor_wrote),
}


def merged(refs: Sequence[Ref]) -> list[Ref]:
    """``refs`` with each dataset once, in first-seen order; what one occurrence knew fills the other's gaps."""
    found: dict[tuple[str, str], Ref] = {}
    for ref in refs:
        known = found.get(ref.key)
        if known is None:
            found[ref.key] = ref
            continue
        found[ref.key] = replace(
            known,
            rows=known.rows if known.rows is not None else ref.rows,
            fingerprint=known.fingerprint or ref.fingerprint,
            model={**(ref.model or {}), **(known.model or {})} or None,
            run={**(ref.run or {}), **(known.run or {})} or None,
        )
    return list(found.values())


def task_datasets(
    inputs: Mapping[str, str], output: str | None, result: Any, facts: Facts
) -> tuple[list[Ref], list[Ref]]:
    """A task's (inputs, outputs): what its declared parameters name, and what its result (if any) says.

    :param inputs: parameter name -> contract kind, for the parameters holding upstream results.
    :param output: the kind of the task's own result; None when it names no dataset.
    :param result: the task's result, or None (the task is starting, failed or skipped).
    """
    read: list[Ref] = []
    for param, kind in inputs.items():
        value = facts.upstream.get(param)
        if isinstance(value, dict | list | str) and value:  # a lazy sequence of mapped results is not read
            read += KINDS[kind].read(value, facts)
    wrote_in: list[Ref] = []
    wrote_out: list[Ref] = []
    if output is not None and isinstance(result, dict | list) and result:
        wrote_in, wrote_out = KINDS[output].wrote(result, facts)
    outputs = merged(wrote_out)
    written = {ref.key for ref in outputs}
    return [ref for ref in merged([*read, *wrote_in]) if ref.key not in written], outputs
