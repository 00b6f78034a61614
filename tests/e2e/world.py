"""What the browser tests look at: one embedded stack after a demo-like loop, and its REST views.

The stack runs two pipelines: the demo's ``churn`` (all three DAGs; the demo loop gives it a
champion, a scoring run and a monitoring run) and ``retention`` (its training DAG only, the spec
in ``pipelines/retention.yaml``), whose promotions wait for a person's answer in Airflow's
"Required Actions". Two labeled batches land for ``retention``: a small one (run A: the first
candidate, nothing to compare with) and, once A waits for its answer, a large one (run B: a second
candidate that beats A on the gate, so it asks too; the training DAG runs one run at a time, so B
starts only once A has been answered and has ended).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from airflow_mlops import layout
from airflow_mlops.core.data import synthetic
from airflow_mlops.devstack.demo import DemoResult
from airflow_mlops.devstack.rest import AirflowClient
from airflow_mlops.devstack.stack import StackConfig, single_pipeline_project

HERE = Path(__file__).resolve().parent
RETENTION_SPEC = HERE / "pipelines" / "retention.yaml"
RETENTION_DAG = "retention_training"
RETENTION_MODEL = "retention_classifier"
APPROVE_TASK = "model.approve"
DAG_FILE = '''"""The e2e stack's approval pipeline: retention's training DAG."""

from pathlib import Path

from airflow_mlops.factories import build_training_dag

dag = build_training_dag(Path(__file__).parents[1] / "include" / "pipelines" / "retention.yaml")
'''
# (rows, seed, batch day) of the two retention batches: run A learns from 150 rows, run B from
# those and 3000 more and beats A on the same test rows (ROC AUC 0.82 against 0.78, seen here).
FIRST_BATCH = (150, 11, dt.date(2026, 11, 2))
SECOND_BATCH = (3000, 12, dt.date(2026, 11, 9))

ANSWER_AFTER_SECONDS = 15.0  # how old an approval request is before a test answers it (see wait_awaiting_approval)
T = TypeVar("T")


def subject(version: str) -> str:
    """The approval request's subject for a retention version (operators/approval.py)."""
    return f"Promote {RETENTION_MODEL} v{version} to champion?"


def build_project(folder: Path) -> tuple[Path, Path]:
    """A project with churn's three DAGs and retention's training DAG: (dags folder, pipelines folder)."""
    dags, pipelines = single_pipeline_project(folder, "churn")
    shutil.copy(RETENTION_SPEC, pipelines / RETENTION_SPEC.name)
    (dags / f"{RETENTION_DAG}.py").write_text(DAG_FILE)
    return dags, pipelines


def land_retention_batch(batch: tuple[int, int, dt.date]) -> str:
    """Land one labeled batch in retention's training inbox (this process's roots point at the stack)."""
    rows, seed, day = batch
    return synthetic.land_batch("churn", layout.landing_dir("retention", "training"), day, rows, seed=seed).uri


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, every: float = 2.0) -> T:
    """Poll ``probe`` until it returns something other than None; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


@dataclass
class World:
    """The running stack as the tests see it."""

    config: StackConfig
    password: str
    client: AirflowClient
    demo: DemoResult
    first_run: str  # retention run A: its approval request is pending when the tests start

    def second_run(self, timeout: float = 180.0) -> dict[str, Any]:
        """Retention run B, made of the second batch's Asset event once run A has ended.

        While A waits for its answer the scheduler creates no run for the event (the DAG's
        ``max_active_runs=1``); the event stays queued and becomes B when A is done.
        """

        def probe() -> dict[str, Any] | None:
            runs = [r for r in self.client.dag_runs(RETENTION_DAG) if r["run_type"] == "asset_triggered"]
            return next((r for r in runs if r["dag_run_id"] != self.first_run), None)

        return wait_for(f"a second asset-triggered {RETENTION_DAG} run", probe, timeout)

    @property
    def airflow_url(self) -> str:
        return self.config.airflow_url

    def champion(self, model: str) -> str | None:
        """The version the MLflow alias ``champion`` of ``model`` points at (None: no alias)."""
        response = httpx.get(
            f"{self.config.mlflow_url}/api/2.0/mlflow/registered-models/alias",
            params={"name": model, "alias": "champion"},
            timeout=30,
        )
        if response.status_code == 404 or (
            response.status_code == 400 and response.json().get("error_code") == "INVALID_PARAMETER_VALUE"
        ):
            return None
        response.raise_for_status()
        return str(response.json()["model_version"]["version"])

    def approval_tag(self, model: str, version: str) -> dict[str, Any] | None:
        """The answer the approval task wrote to the version (its ``approval`` tag), or None."""
        response = httpx.get(
            f"{self.config.mlflow_url}/api/2.0/mlflow/model-versions/get",
            params={"name": model, "version": version},
            timeout=30,
        )
        response.raise_for_status()
        tags = {t["key"]: t["value"] for t in response.json()["model_version"].get("tags", [])}
        return json.loads(tags["approval"]) if "approval" in tags else None

    def versions(self, model: str) -> list[str]:
        response = httpx.get(
            f"{self.config.mlflow_url}/api/2.0/mlflow/model-versions/search",
            params={"filter": f"name='{model}'"},
            timeout=30,
        )
        response.raise_for_status()
        return sorted((v["version"] for v in response.json().get("model_versions", [])), key=int)

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.client.get(f"/dags/{dag_id}/dagRuns/{run_id}"))

    def tasks(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        return {t["task_id"]: t["state"] for t in self.client.task_instances(dag_id, run_id) if t["map_index"] < 0}

    def hitl(self, run_id: str) -> dict[str, Any]:
        """The approval request of one retention run (its answer once given)."""
        path = f"/dags/{RETENTION_DAG}/dagRuns/{run_id}/taskInstances/{APPROVE_TASK}/-1/hitlDetails"
        return dict(self.client.get(path))

    def wait_awaiting_approval(self, run_id: str, timeout: float = 600.0) -> None:
        def probe() -> bool | None:
            tasks = self.tasks(RETENTION_DAG, run_id)
            if self.run(RETENTION_DAG, run_id)["state"] in ("success", "failed"):
                raise AssertionError(f"{run_id} finished without asking for approval: {tasks}")
            return True if tasks.get(APPROVE_TASK) == "awaiting_input" else None

        wait_for(f"{RETENTION_DAG} {run_id} asking for approval", probe, timeout)
        # Airflow 3.3.2 race (seen here): an answer given within seconds of the task deferring resumes it
        # before the executor has reported the deferring process's exit; that late "success" then finds
        # the resumed task running and the scheduler marks it failed. People answer later than that.
        created = dt.datetime.fromisoformat(self.hitl(run_id)["created_at"].replace("Z", "+00:00"))
        time.sleep(max(0.0, ANSWER_AFTER_SECONDS - (dt.datetime.now(dt.UTC) - created).total_seconds()))

    def wait_finished(self, dag_id: str, run_id: str, timeout: float = 300.0) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            run = self.run(dag_id, run_id)
            return run if run["state"] in ("success", "failed") else None

        return wait_for(f"{dag_id} {run_id} finishing", probe, timeout)

    def gate(self, run_id: str) -> dict[str, Any]:
        return dict(self.client.xcom(RETENTION_DAG, run_id, "model.gate") or {})
