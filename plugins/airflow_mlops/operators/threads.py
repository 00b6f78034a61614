"""The Airflow side of the thread cap: how many model tasks can run at once on this host.

``core.model.threads`` turns that number into threads per task (``max(1, cores // tasks at once)``,
or ``model.threads_per_task``) and applies it. How many tasks can run at once is the
smallest of:

- the width: for a mapped task, its number of mapped instances (the trials); for any other
  task, the thread-capped tasks of its DAG with the same upstream tasks as it (itself
  included: evaluate and package of the training DAG run side by side, so 2);
- for a mapped task, its ``max_active_tis_per_dagrun`` and ``max_active_tis_per_dag``;
- the DAG's ``max_active_tasks``;
- the task slots of this host's executor: ``celery.worker_concurrency`` under Celery, 1 under
  Kubernetes (a pod per task), else ``core.parallelism`` (the LocalExecutor's processes).

Pools are not read (a task cannot see a pool's size from the task SDK): when a pool holds the
trials back, set ``model.threads_per_task``. Nothing here imports core at module level.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_mlops.core.model.threads import ThreadCap
    from airflow_mlops.spec import PipelineSpec

# Class attribute of the operators that fit or evaluate models; siblings with it share the cores.
CAPS_THREADS = "caps_model_threads"


def executor_slots(task: Any) -> int | None:
    """How many tasks this host's executor runs at once, from Airflow's configuration."""
    from airflow.sdk.configuration import conf

    executor = str(getattr(task, "executor", None) or conf.get("core", "executor", fallback="") or "")
    executor = executor.split(",")[0]
    if "Celery" in executor:
        return conf.getint("celery", "worker_concurrency", fallback=16)
    if "Kubernetes" in executor:
        return 1
    return conf.getint("core", "parallelism", fallback=32)


def task_width(task: Any, width: int | None) -> int:
    """``width`` for a mapped task (its instances); else the capped tasks beside it in its DAG."""
    if width is not None:
        return width
    dag = getattr(task, "dag", None)
    if dag is None:
        return 1
    upstream = set(task.upstream_task_ids)
    siblings = [t for t in dag.tasks if getattr(t, CAPS_THREADS, False) and set(t.upstream_task_ids) == upstream]
    return max(1, len(siblings))


def thread_cap(task: Any, spec: PipelineSpec, width: int | None = None) -> ThreadCap:
    """The cap for ``task``: ``model.threads_per_task`` or cores // tasks that can run at once.

    :param width: the number of mapped instances, for a mapped task (the trials).
    """
    from airflow_mlops.core.model.threads import available_cores, parallel_tasks, threads_per_task

    dag = getattr(task, "dag", None)
    limits: list[int | None] = [getattr(dag, "max_active_tasks", None), executor_slots(task)]
    if width is not None:
        limits += [getattr(task, "max_active_tis_per_dagrun", None), getattr(task, "max_active_tis_per_dag", None)]
    parallel = parallel_tasks(task_width(task, width), *limits)
    return threads_per_task(available_cores(), parallel, spec.model.threads_per_task)


@contextmanager
def capped_threads(task: Any, spec: PipelineSpec, width: int | None = None) -> Iterator[ThreadCap]:
    """Run the block with this task's BLAS/OpenMP threads capped; log the cap in the task log."""
    from airflow_mlops.core.model.threads import limit_threads

    cap = thread_cap(task, spec, width)
    task.log.info("BLAS/OpenMP threads for this task: %s", cap.describe())
    with limit_threads(cap.threads):
        yield cap
