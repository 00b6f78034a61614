"""Fault injection on the native production stack: lose a Celery worker in the middle of a task.

Used by tests/integration/test_production.py and benchmarks/production_shape.py. The kill is
what a lost machine does: SIGKILL of the worker and everything of its session (its task
supervisors and task processes too: Airflow puts each task in a process group of its own, so
killing only the worker's group would leave them running).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from airflow_mlops.devstack.production import ProductionStack
from airflow_mlops.devstack.rest import AirflowClient


class WorkerKiller(threading.Thread):
    """Kills the worker that runs ``task_id`` in a new run of ``dag_id``, once, and records what it did."""

    def __init__(
        self,
        stack: ProductionStack,
        client: AirflowClient,
        dag_id: str,
        known_runs: set[str],
        task_id: str = "model.trial",
        timeout: float = 900.0,
    ) -> None:
        super().__init__(daemon=True)
        self.stack, self.client, self.dag_id, self.known = stack, client, dag_id, set(known_runs)
        self.task_id, self.timeout = task_id, timeout
        self.killed: dict[str, Any] | None = None
        self.done = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        while not self.done.is_set() and time.monotonic() < deadline:
            for run in self.client.dag_runs(self.dag_id):
                if run["dag_run_id"] in self.known or run["state"] != "running":
                    continue
                for ti in self.client.task_instances(self.dag_id, run["dag_run_id"]):
                    host = ti.get("hostname") or ""
                    if ti["task_id"] == self.task_id and ti["state"] == "running" and host in self.stack.records:
                        at = time.time()
                        pids = self.stack.kill_role(host)
                        self.killed = {
                            "run_id": run["dag_run_id"], "task_id": self.task_id, "map_index": ti["map_index"],
                            "worker": host, "at": at, "pids": len(pids),
                        }  # fmt: skip
                        return
            time.sleep(0.5)
