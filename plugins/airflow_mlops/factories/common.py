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


# What each of a pipeline's Assets (factories.assets, ``mlops.<pipeline>.<kind>``) means as a trigger.
TRIGGER_WORDS = {
    "landing.training": "labeled files landing",
    "landing.scoring": "files to score landing",
    "drift": "drift or decay found by monitoring",
    "predictions": "predictions logged",
    "champion": "a new champion",
    "message": "a retrain message",
    "code_change": "a change of what is trained",
}


def _cron_words(expression: str) -> str:
    """``0 3 * * 1`` -> ``at 03:00, only on Monday`` (cron_descriptor, which Airflow's own
    timetable descriptions use); the expression itself when it cannot say."""
    try:
        from cron_descriptor import CasingTypeEnum, ExpressionDescriptor

        text = str(
            ExpressionDescriptor(
                expression, casing_type=CasingTypeEnum.Sentence, use_24hour_time_format=True
            ).get_description()
        )
        return text[:1].lower() + text[1:]
    except Exception:  # a describer's gap must not break the DAG: the cron stays readable as it is
        return expression


def schedule_parts(schedule: Any) -> tuple[str | None, str | None, list[str]]:
    """(cron expression, its timezone, the triggering Asset names) of what ``schedule_for`` built."""
    from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable

    timetable, condition = schedule, schedule
    if isinstance(schedule, AssetOrTimeSchedule):
        timetable, condition = schedule.timetable, schedule.asset_condition
    cron, timezone = None, None
    if isinstance(timetable, CronTriggerTimetable):
        cron, timezone = timetable.expression, str(timetable.timezone)
    if isinstance(condition, Asset):
        assets = [condition.name]
    else:
        assets = [a.name for a in getattr(condition, "objects", ()) if isinstance(a, Asset)]
    return cron, timezone, assets


def describe_schedule(schedule: Any) -> list[str]:
    """What starts the DAG's runs, in words: the calendar first, then each triggering Asset.

    The Airflow 3.3 UI shows a DAG scheduled on Assets *or* a cron (``AssetOrTimeSchedule``) as
    "0 of 2 assets updated" and nothing of the cron; these words go where the DAG list shows
    them (the description, the DAG name's tooltip; a ``Cron ...`` tag) and into the DAG docs.
    """
    cron, timezone, assets = schedule_parts(schedule)
    words = [f"{_cron_words(cron)} (cron {cron}, {timezone})"] if cron else []
    for name in assets:
        kind = name.split(".", 2)[-1] if name.startswith("mlops.") else name
        words.append(f"on {TRIGGER_WORDS.get(kind, name)}")
    return words


def dag_kwargs(spec: PipelineSpec, kind: str, spec_path: str | Path, schedule: Any = None) -> dict[str, Any]:
    """The DAG's arguments; with ``schedule`` (what ``schedule_for`` built, or an Asset) also
    that schedule, and words for it in the description, the docs and a ``Cron ...`` tag.

    ``catchup=False``: a cron's missed ticks are not replayed, but Airflow runs its latest tick
    once as soon as the DAG is first parsed (docs/deployment.md, "Calendar runs").
    """
    runs = describe_schedule(schedule) if schedule is not None else []
    when = f"; runs {', '.join(runs)}" if runs else ""
    doc = f"Generated by airflow-mlops from `{spec_path}`.\n\n{spec.description}"
    if runs:
        doc += "\n\n**Runs**\n\n" + "\n".join(f"- {line[:1].upper()}{line[1:]}" for line in runs)
    tags = {"airflow-mlops", spec.name, kind, *spec.tags}
    cron, timezone, _ = schedule_parts(schedule) if schedule is not None else (None, None, [])
    if cron:  # capitalised: tags sort by code point, and the DAG list shows the first three
        tags.add(f"Cron {cron} {timezone}"[:100])  # Airflow's tag limit
    kwargs: dict[str, Any] = {
        "dag_id": f"{spec.name}_{kind}",
        "description": f"{kind.capitalize()} for '{spec.name}'{when}: {spec.description}"[:500],
        "doc_md": doc,
        "tags": sorted(tags),
        "start_date": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "catchup": False,
        "default_args": {"owner": spec.owner, "retries": 0},
    }
    if schedule is not None:
        kwargs["schedule"] = schedule
    return kwargs
