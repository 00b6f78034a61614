"""What the model page reads of Airflow itself: the latest runs of each DAG and the open approvals.

The page's app runs inside Airflow's api-server, which holds the metadata database: two
queries per page (latest run of every DAG asked for; the approval requests not answered yet)
instead of three REST calls per DAG from the browser. ``AirflowState`` is the seam: tests
and the benchmark give a ``StaticState``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class AirflowState(Protocol):
    def latest_runs(self, dag_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The newest run of each DAG (by run_after): run_id, state, run_type, start, end, note."""

    def recent_run_ids(self, dag_id: str, limit: int) -> list[str]:
        """Run ids of the DAG's newest ``limit`` runs, newest first."""

    def pending_approvals(self, dag_ids: list[str]) -> list[dict[str, Any]]:
        """Approval requests (human-in-the-loop) of these DAGs nobody answered yet."""


def _name(value: Any) -> str | None:
    """An enum's value (DagRunState.SUCCESS -> "success"), a plain string as is, None as None."""
    return None if value is None else str(getattr(value, "value", value))


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


class DatabaseState:
    """``AirflowState`` from the api-server's metadata database (its own SQLAlchemy session)."""

    def latest_runs(self, dag_ids: list[str]) -> dict[str, dict[str, Any]]:
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import func, select

        if not dag_ids:
            return {}
        newest = (
            select(DagRun.dag_id, func.max(DagRun.run_after).label("run_after"))
            .where(DagRun.dag_id.in_(dag_ids))
            .group_by(DagRun.dag_id)
            .subquery()
        )
        query = select(DagRun).join(
            newest, (DagRun.dag_id == newest.c.dag_id) & (DagRun.run_after == newest.c.run_after)
        )
        with create_session() as session:
            return {
                run.dag_id: {
                    "run_id": run.run_id,
                    "state": _name(run.state),
                    "run_type": _name(run.run_type),
                    "start": _iso(run.start_date),
                    "end": _iso(run.end_date),
                    "run_after": _iso(run.run_after),
                    "note": run.note,
                }
                for run in session.scalars(query)
            }

    def recent_run_ids(self, dag_id: str, limit: int) -> list[str]:
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import select

        query = select(DagRun.run_id).where(DagRun.dag_id == dag_id).order_by(DagRun.run_after.desc()).limit(limit)
        with create_session() as session:
            return [str(r) for r in session.scalars(query)]

    def pending_approvals(self, dag_ids: list[str]) -> list[dict[str, Any]]:
        from airflow.models.hitl import HITLDetail
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        if not dag_ids:
            return []
        query = (
            select(HITLDetail, TaskInstance)
            .join(TaskInstance, TaskInstance.id == HITLDetail.ti_id)
            .where(TaskInstance.dag_id.in_(dag_ids), HITLDetail.responded_at.is_(None))
            .order_by(HITLDetail.created_at.desc())
        )
        with create_session() as session:
            return [
                {
                    "dag_id": ti.dag_id,
                    "run_id": ti.run_id,
                    "task_id": ti.task_id,
                    "map_index": ti.map_index,
                    "subject": detail.subject,
                    "body": detail.body,
                    "options": list(detail.options or []),
                    "params": dict(detail.params or {}),
                    "created": _iso(detail.created_at),
                    "state": _name(ti.state),
                }
                for detail, ti in session.execute(query)
            ]


@dataclass
class StaticState:
    """``AirflowState`` from fixed answers (tests, the benchmark, an app outside an api-server)."""

    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    run_ids: dict[str, list[str]] = field(default_factory=dict)
    approvals: list[dict[str, Any]] = field(default_factory=list)

    def latest_runs(self, dag_ids: list[str]) -> dict[str, dict[str, Any]]:
        return {d: self.runs[d] for d in dag_ids if d in self.runs}

    def recent_run_ids(self, dag_id: str, limit: int) -> list[str]:
        return self.run_ids.get(dag_id, [])[:limit]

    def pending_approvals(self, dag_ids: list[str]) -> list[dict[str, Any]]:
        return [a for a in self.approvals if a["dag_id"] in dag_ids]
