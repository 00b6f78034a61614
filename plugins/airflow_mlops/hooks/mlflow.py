"""The MLflow hook: an Airflow Connection of type ``mlflow`` becomes a tracking URI.

Connection fields: ``host`` is the tracking server (``http://mlflow:5000``, or a
full URI such as ``sqlite:////path/mlflow.db``), ``port`` optional; ``login`` /
``password`` become MLflow's basic-auth variables, ``extra.token`` its bearer token.
Credentials are set in the task's environment only, never logged or returned.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook


class MlflowHook(BaseHook):
    """Resolve an ``mlflow`` connection to a tracking/registry URI and an MlflowClient.

    :param mlflow_conn_id: the Airflow connection id (default ``mlflow_default``).
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(self, mlflow_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.mlflow_conn_id = mlflow_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["schema"],
            "relabeling": {"host": "Tracking URI (http://host or sqlite:///...)"},
            "placeholders": {"host": "http://127.0.0.1:5000", "extra": '{"token": "..."}'},
        }

    @cached_property
    def tracking_uri(self) -> str:
        conn = self.get_connection(self.mlflow_conn_id)
        host = (conn.host or "").rstrip("/")
        if not host:
            raise ValueError(f"connection '{self.mlflow_conn_id}' has no host (the MLflow tracking URI)")
        if "://" not in host:
            host = f"http://{host}"
        if conn.port and host.startswith(("http://", "https://")):
            host = f"{host}:{conn.port}"
        # Credentials go to MLflow's own environment variables, so they never reach logs or XCom.
        if conn.login:
            os.environ["MLFLOW_TRACKING_USERNAME"] = conn.login
        if conn.password:
            os.environ["MLFLOW_TRACKING_PASSWORD"] = conn.password
        token = (conn.extra_dejson or {}).get("token")
        if token:
            os.environ["MLFLOW_TRACKING_TOKEN"] = token
        return host

    def get_conn(self) -> Any:
        """An ``mlflow.MlflowClient`` bound to this connection."""
        from airflow_mlops.core import registry

        return registry.client(self.tracking_uri)

    def test_connection(self) -> tuple[bool, str]:
        try:
            self.get_conn().search_experiments(max_results=1)
        except Exception as exc:
            return False, f"cannot reach MLflow at {self.tracking_uri}: {exc}"
        return True, f"MLflow reachable at {self.tracking_uri}"
