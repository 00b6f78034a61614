"""Shared pieces of the DAG factories: spec loading, schedules, DAG defaults."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import DAG
    from airflow.sdk.definitions.asset import BaseAsset
    from airflow.sdk.types import Operator

    from airflow_mlops.spec import PipelineSpec


def resolve(spec_path: str | Path) -> Path:
    """The spec file a DAG file names: that path, else the same file in ``$AIRFLOW_MLOPS_PIPELINES_DIR``.

    So a DAG file works wherever its folder sits relative to the specs (``airflow-mlops
    stack up --pipelines-folder``, an image with its own layout): ``build_training_dag("churn")``
    or ``build_training_dag(".../include/pipelines/churn.yaml")``. A missing file fails here,
    naming both places looked at.
    """
    import os

    from airflow_mlops.layout import PIPELINES_ENV

    path = Path(spec_path)
    if path.is_file():
        return path
    folder = os.environ.get(PIPELINES_ENV)
    names = [path.name] if path.suffix in (".yaml", ".yml") else [f"{path.name}.yaml", f"{path.name}.yml"]
    candidates = [Path(folder) / name for name in names] if folder else []
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    from airflow_mlops.spec import SpecError

    elsewhere = f" nor {' or '.join(map(str, candidates))}" if candidates else f" ({PIPELINES_ENV} unset)"
    raise SpecError(
        f"no pipeline spec {path}{elsewhere}: write it (`airflow-mlops init <file> --label <column>`) "
        f"or point {PIPELINES_ENV} at the folder holding it"
    )


def load(spec_path: str | Path) -> PipelineSpec:
    """Load the spec at parse time; a bad spec raises an error naming the file and field."""
    from airflow_mlops.spec import load_spec

    return load_spec(spec_path)


def _xcom_producers(task: Operator) -> set[str]:
    """The tasks whose results ``task`` takes as XComArgs (``other.output``) in its templated fields."""
    from airflow.sdk.definitions.mappedoperator import MappedOperator
    from airflow.sdk.definitions.xcom_arg import XComArg

    if isinstance(task, MappedOperator):
        values: list[Any] = [task.expand_input.value, *task.partial_kwargs.values()]
    else:
        values = [getattr(task, name, None) for name in task.template_fields]
    return {producer.task_id for value in values for producer, _ in XComArg.iter_xcom_references(value)}


def drop_implied_edges(dag: DAG) -> None:
    """Remove each edge an XComArg added that the DAG's other edges already imply.

    Passing ``other.output`` makes ``other`` an upstream of the task; the training tasks take
    results of tasks several steps up (register reads the ingest task's), so most of those
    edges only repeat the chain. Without them the graph is the one the factory draws, edge for
    edge: a task's direct upstreams (what ``all_success``, ``all_done`` and the approval's
    skip look at) stay the same, and whatever they imply about the tasks further up holds
    through the chain. The XComArgs still resolve: a task pulls the result by task id.
    """
    tasks = {task.task_id: task for task in dag.tasks}

    def reachable_without(source: str, target: str) -> bool:
        """Whether ``target`` is downstream of ``source`` other than by their direct edge."""
        seen: set[str] = set()
        stack = [t for t in tasks[source].downstream_task_ids if t != target]
        while stack:
            current = stack.pop()
            if current == target:
                return True
            if current not in seen:
                seen.add(current)
                stack.extend(tasks[current].downstream_task_ids)
        return False

    for task in dag.tasks:
        for producer in sorted(_xcom_producers(task) & task.upstream_task_ids):
            if reachable_without(producer, task.task_id):
                task.upstream_task_ids.discard(producer)
                tasks[producer].downstream_task_ids.discard(task.task_id)


def schedule_for(cron: str | None, timezone: str, assets: Sequence[BaseAsset]) -> Any:
    """Cron, assets, or both (whichever comes first); None when neither is configured."""
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    condition: BaseAsset | None = None
    for asset in assets:
        condition = asset if condition is None else condition | asset
    if cron and condition is not None:
        return AssetOrTimeSchedule(timetable=CronTriggerTimetable(cron, timezone=timezone), assets=condition)
    if cron:
        return CronTriggerTimetable(cron, timezone=timezone)
    return condition


def dag_kwargs(spec: PipelineSpec, kind: str, spec_path: str | Path) -> dict[str, Any]:
    return {
        "dag_id": f"{spec.name}_{kind}",
        "description": f"{kind.capitalize()} for '{spec.name}': {spec.description}"[:200],
        "doc_md": f"Generated by airflow-mlops from `{spec_path}`.\n\n{spec.description}",
        "tags": sorted({"airflow-mlops", spec.name, kind, *spec.tags}),
        "start_date": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "catchup": False,
        "default_args": {"owner": spec.owner, "retries": 0},
    }
