"""A small client of Airflow 3's public REST API (``/api/v2``), used by the demo and tests."""

from __future__ import annotations

import time
from typing import Any

import httpx

FINISHED = {"success", "failed"}


class AirflowClient:
    """Logs in with ``username``/``password`` (``POST /auth/token``), or uses ``token`` (a JWT) as is."""

    def __init__(
        self,
        base_url: str,
        username: str = "",
        password: str = "",
        timeout: float = 30.0,
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if token is None:
            answer = httpx.post(
                f"{self.base_url}/auth/token", json={"username": username, "password": password}, timeout=timeout
            )
            answer.raise_for_status()
            token = str(answer.json()["access_token"])
        self.http = httpx.Client(
            base_url=f"{self.base_url}/api/v2",
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )

    def get(self, path: str, **params: Any) -> Any:
        response = self.http.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def dag(self, dag_id: str) -> dict[str, Any] | None:
        response = self.http.get(f"/dags/{dag_id}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return dict(response.json())

    def dags(self) -> list[dict[str, Any]]:
        """Every DAG Airflow knows from current files (stale ones left out)."""
        return [d for d in self.get("/dags", limit=1000)["dags"] if not d.get("is_stale")]

    def import_errors(self) -> list[dict[str, Any]]:
        return list(self.get("/importErrors")["import_errors"])

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Runs of ``dag_id``, oldest first."""
        return list(self.get(f"/dags/{dag_id}/dagRuns", order_by="run_after", limit=100)["dag_runs"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"])

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        response = self.http.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json().get("value")

    def triggering_assets(self, dag_id: str, run_id: str) -> list[str]:
        """Names of the assets whose events created this run (empty for calendar/manual runs)."""
        events = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/upstreamAssetEvents")["asset_events"]
        return sorted({event["name"] for event in events})

    def asset_id(self, name: str) -> int | None:
        """The id of the active asset named exactly ``name`` (the newest, should two URIs carry it), or None."""
        found = [a for a in self.get("/assets", name_pattern=name, limit=100)["assets"] if a["name"] == name]
        return int(max(found, key=lambda a: a["id"])["id"]) if found else None

    def create_asset_event(self, asset_id: int, extra: dict[str, Any]) -> dict[str, Any]:
        """``POST /assets/events``: an Asset event, as a task's outlet would emit (Airflow adds ``from_rest_api``)."""
        response = self.http.post("/assets/events", json={"asset_id": asset_id, "extra": extra})
        response.raise_for_status()
        return dict(response.json())

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.http.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        response.raise_for_status()
        return dict(response.json())

    def wait_for_dags(self, dag_ids: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        missing = list(dag_ids)
        while missing and time.monotonic() < deadline:
            missing = [d for d in dag_ids if self.dag(d) is None]
            if missing:
                time.sleep(2)
        if missing:
            raise TimeoutError(
                f"DAGs not parsed after {timeout:.0f}s: {missing}; import errors: {self.import_errors()}"
            )

    def wait_for_new_run(
        self, dag_id: str, known: set[str], timeout: float, run_type: str | None = None
    ) -> dict[str, Any]:
        """Wait until a run not in ``known`` (optionally of ``run_type``) has finished."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for run in self.dag_runs(dag_id):
                if run["dag_run_id"] in known or (run_type and run["run_type"] != run_type):
                    continue
                if run["state"] in FINISHED:
                    return run
            time.sleep(2)
        raise TimeoutError(f"no new {run_type or ''} run of {dag_id} finished within {timeout:.0f}s")
