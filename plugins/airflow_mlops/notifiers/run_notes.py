"""The DAG run's note says what the run did: ``PROMOTED v2 (+0.0101 roc_auc over v1)``.

Written by an Airflow listener (``on_dag_run_success`` / ``on_dag_run_failed``) that runs in the
**scheduler**, when the run ends: it reads what the run's tasks recorded (XCom
``core.model.outcome.OUTCOME_KEY``: the gate's verdict, the promotion, a skip, a failure and its
reason) and the run's approval answers (``hitl_detail``), composes the line with
``core.model.outcome.run_note`` and sets ``dag_run.note`` on the scheduler's own session, which
commits it with the run's state.

Why here and not in a task or a DAG callback (Airflow 3.3.2):

- a task cannot set its run's note: the Task SDK's supervisor protocol has no such message and the
  Execution API no route that writes ``dag_run_note``; the public REST API (``PATCH
  /api/v2/dags/{dag_id}/dagRuns/{run_id}``) needs a user's credentials a worker does not have;
- a DAG-level ``on_success_callback`` / ``on_failure_callback`` runs in a DAG processor's child
  process, where ``supervisor.block_orm_access`` removes the database session, and it too talks
  to the Execution API only;
- the scheduler changes the run's state in ``DagRun.update_state``, with a session, whatever the
  executor (Local, Celery, Kubernetes: the workers are not involved), and calls the dag-run
  listeners right there; ``dag.test()`` calls the same ``update_state``.

The listener only reads and sets one attribute: a failure is logged and never reaches the
scheduler (``notify_dagrun_state_changed`` catches it too). Runs that recorded no outcome and are
not airflow-mlops DAGs (tag ``airflow-mlops``) are left alone. Registered by ``RunNotesPlugin``
(entry point ``airflow.plugins``); light: no heavy import, nothing at import time.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

if TYPE_CHECKING:
    from airflow.models.dagrun import DagRun

log = logging.getLogger(__name__)
MLOPS_TAG = "airflow-mlops"  # every factory-built DAG carries it (factories.common.dag_kwargs)


@hookimpl
def on_dag_run_success(dag_run: DagRun, msg: str) -> None:
    write_note(dag_run)


@hookimpl
def on_dag_run_failed(dag_run: DagRun, msg: str) -> None:
    write_note(dag_run)


def write_note(dag_run: DagRun) -> str | None:
    """Set the note of a finished run from what its tasks recorded; return it (None: left alone)."""
    from airflow.utils.state import DagRunState
    from sqlalchemy.orm import object_session

    from airflow_mlops.core.model import outcome

    try:
        ended_failed = dag_run.state == DagRunState.FAILED  # the state just set, maybe not flushed yet
        session = object_session(dag_run)
        if session is None:  # dag.test(): its in-process API closed the thread's session under the run
            from airflow import settings
            from airflow.models.dagrun import DagRun

            if settings.Session is None:
                return None
            session = settings.Session()  # that scoped session again: dag.test commits it next
            dag_run = session.get(DagRun, dag_run.id) or dag_run
        outcomes = _outcomes(session, dag_run)
        if not outcomes and not _is_mlops_dag(session, dag_run):
            return None
        failed = _failed_tasks(session, dag_run) if ended_failed else []
        note = outcome.run_note(outcomes, _approvals(session, dag_run), failed)
        if note is None:
            return None
        dag_run.note = outcome.merge_note(dag_run.note, note)
        return note
    except Exception:  # the scheduler must go on whatever happens here
        log.exception("could not write the note of %s/%s", dag_run.dag_id, dag_run.run_id)
        return None


def _outcomes(session: Any, dag_run: DagRun) -> list[dict[str, Any]]:
    """The outcomes the run's tasks recorded, oldest first."""
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    from airflow_mlops.core.model.outcome import OUTCOME_KEY

    rows = session.execute(
        select(XComModel.value, XComModel.timestamp)
        .where(XComModel.dag_run_id == dag_run.id, XComModel.key == OUTCOME_KEY)
        .order_by(XComModel.timestamp)
    ).all()
    values = [XComModel.deserialize_value(row) for row in rows]
    return [v for v in values if isinstance(v, dict)]


def _approvals(session: Any, dag_run: DagRun) -> list[dict[str, Any]]:
    """The run's answered human-in-the-loop requests: chosen options and who answered."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    details = session.scalars(
        select(HITLDetail)
        .join(TaskInstance, TaskInstance.id == HITLDetail.ti_id)
        .where(TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id)
    ).all()
    return [
        {"chosen_options": list(d.chosen_options or []), "responded_by": d.responded_by_user_name}
        for d in details
        if d.chosen_options
    ]


def _failed_tasks(session: Any, dag_run: DagRun) -> list[str]:
    from airflow.utils.state import TaskInstanceState

    return sorted({ti.task_id for ti in dag_run.get_task_instances(state=[TaskInstanceState.FAILED], session=session)})


def _is_mlops_dag(session: Any, dag_run: DagRun) -> bool:
    from airflow.models.dag import DagTag
    from sqlalchemy import select

    tags = session.scalars(select(DagTag.name).where(DagTag.dag_id == dag_run.dag_id)).all()
    return MLOPS_TAG in tags


class RunNotesPlugin(AirflowPlugin):
    """Registers this module's dag-run listeners (in the scheduler, and wherever Airflow loads plugins)."""

    name = "airflow_mlops_run_notes"
    listeners = [sys.modules[__name__]]
