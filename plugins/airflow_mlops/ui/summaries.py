"""The pipelines' specs, DAGs, landing inboxes and open claims: what every overview row starts from.

A spec that does not load is listed with its error (to users who may read import errors);
a pipeline only when the user may read each of its DAGs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Which pipelines the request's user may see: (dag_id) -> may read it.
Access = Callable[[str], bool]


def pipelines_dir() -> Path:
    from airflow_mlops.layout import PIPELINES_ENV

    return Path(os.environ.get(PIPELINES_ENV, "include/pipelines"))


def load_all() -> list[tuple[Path, Any]]:
    """Every spec file with its spec, or the ``SpecError`` that makes it unusable; parsed once per file version.

    A spec is parsed again only when its file changes (size or mtime): the pages ask on every
    request, and parsing ten specs costs more than answering from MLflow's cache.
    """
    from airflow_mlops.spec import SpecError, load_spec

    out: list[tuple[Path, Any]] = []
    for path in sorted(pipelines_dir().glob("*.y*ml")):
        try:
            stat = path.stat()
        except OSError:
            continue
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        if key not in _PARSED:
            try:
                _PARSED[key] = load_spec(path)
            except SpecError as exc:
                _PARSED[key] = exc
        out.append((path, _PARSED[key]))
    return out


_PARSED: dict[tuple[str, int, int], Any] = {}


DAG_KINDS = ("training", "scoring", "monitoring")


def dag_ids(spec: Any) -> dict[str, str]:
    """The pipeline's DAG ids by kind (as the factories name them)."""
    return {kind: f"{spec.name}_{kind}" for kind in DAG_KINDS}


def dag_ids_of(spec: Any) -> list[str]:
    return list(dag_ids(spec).values())


def landing_summary(spec: Any) -> dict[str, Any]:
    """The pipeline's landing inboxes and the state of their claims."""
    from airflow_mlops import layout

    return {
        "inboxes": {k: layout.landing_dir(spec.name, k) for k in ("training", "scoring")},
        "claims": claims_summary(spec.name),
    }


def spec_errors() -> list[dict[str, str]]:
    from airflow_mlops.spec import SpecError

    return [{"spec": str(path), "error": str(spec)} for path, spec in load_all() if isinstance(spec, SpecError)]


def pipeline_summaries(may_read_dag: Access | None = None, may_see_errors: bool = True) -> list[dict[str, Any]]:
    """One entry per spec file: its DAGs, inboxes and champion, or the error that makes it unusable.

    ``may_read_dag`` (None: everything) hides a pipeline unless each of its DAGs passes it;
    ``may_see_errors`` False hides the specs that do not load.
    """
    from airflow_mlops.spec import SpecError

    out: list[dict[str, Any]] = []
    for path, spec in load_all():
        if isinstance(spec, SpecError):
            if may_see_errors:
                out.append({"spec": str(path), "error": str(spec)})
            continue
        dags = dag_ids_of(spec)
        if may_read_dag is not None and not all(may_read_dag(dag) for dag in dags):
            continue
        entry: dict[str, Any] = {
            "spec": str(path),
            "name": spec.name,
            "model": spec.registered_model_name,
            "dags": dags,
        }
        entry.update(landing_summary(spec))
        entry.update(champion_summary(spec.registered_model_name))
        out.append(entry)
    return out


LAKE_OF_INBOX = {"training": "labeled", "scoring": "scoring"}  # as factories.assets wires the triggers


def claims_summary(pipeline: str) -> dict[str, Any]:
    """Per inbox: how many landing claims are open, and the stranded ones (files nobody processes yet).

    ``stranded`` lists claims never delivered (``state: claiming``; ``claimer`` says whether
    their claimer is alive or why it is gone) and claims delivered without an ack yet, each with
    its ``claim_id``, ``age_seconds``, ``deliveries`` and ``files`` (see ``core.landing.recovery``).
    """
    from airflow_mlops import layout
    from airflow_mlops.core.landing.delivery import open_claims
    from airflow_mlops.core.landing.recovery import stranded
    from airflow_mlops.core.redaction import describe_error

    out: dict[str, Any] = {}
    for kind, lake_kind in LAKE_OF_INBOX.items():
        lake = layout.lake_dir(pipeline, lake_kind)
        try:
            out[kind] = {"open": len(open_claims(lake)), "stranded": stranded(lake)}
        except Exception as exc:  # the page must render even when the store is down
            out[kind] = {"error": describe_error(exc)}
    return out


def champion_summary(model_name: str) -> dict[str, Any]:
    """The champion's version and its last five promotions; ``champion_error`` when MLflow fails.

    The error is redacted: a tracking URI with credentials in it must not reach the page.
    """
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not tracking_uri:
        return {}
    from airflow_mlops.core.redaction import describe_error
    from airflow_mlops.core.registry.client import Registry

    try:
        registry = Registry(tracking_uri)
        current = registry.champion(model_name)
        history = registry.promotion_history(model_name) if current else []
    except Exception as exc:  # the page must render even when MLflow is down
        return {"champion_error": describe_error(exc)}
    return {"champion": str(current.version) if current else None, "promotions": history[-5:]}


def readable_specs(may_read_dag: Access | None = None) -> list[Any]:
    """The specs that load, of pipelines whose every DAG the user may read, by name."""
    from airflow_mlops.spec import SpecError

    specs = [spec for _, spec in load_all() if not isinstance(spec, SpecError)]
    return sorted(
        (s for s in specs if may_read_dag is None or all(may_read_dag(d) for d in dag_ids_of(s))), key=lambda s: s.name
    )
