"""The MLflow hook: an Airflow Connection of type ``mlflow`` becomes a ``Registry``.

Connection fields: ``host`` is the tracking server (``http://mlflow:5000``, or a
full URI such as ``sqlite:////path/mlflow.db``), ``port`` optional; ``login`` /
``password`` (or a ``user:password@`` in an http(s) host) become MLflow's basic-auth
variables, ``extra.token`` its bearer token. Credentials are set in the task's environment
only and registered with Airflow's secrets masker; the tracking URI the hook hands out
(``get_uri``) and the ``Registry`` built from it (``get_conn``) never hold them.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from airflow_mlops.core.registry.client import Registry


class MlflowHook(BaseHook):
    """Resolve an ``mlflow`` connection to a tracking/registry URI and a ``Registry`` on it.

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
        host, login, password = split_userinfo(host)
        login, password = conn.login or login, conn.password or password
        # Credentials go to MLflow's own environment variables, so they never reach logs or XCom;
        # Airflow's secrets masker hides them in task logs should a library print them anyway.
        token = (conn.extra_dejson or {}).get("token")
        for variable, value in (("MLFLOW_TRACKING_USERNAME", login), ("MLFLOW_TRACKING_PASSWORD", password),
                                ("MLFLOW_TRACKING_TOKEN", token)):  # fmt: skip
            if value:
                os.environ[variable] = value
                if variable != "MLFLOW_TRACKING_USERNAME":
                    _mask(value)
        return host

    def get_uri(self) -> str:
        """The tracking URI (without credentials), for what needs the text: the serving config, links."""
        return self.tracking_uri

    @cached_property
    def registry(self) -> Registry:
        from airflow_mlops.core.registry.client import Registry

        return Registry(self.tracking_uri)

    def get_conn(self) -> Registry:
        """The ``Registry`` of this connection (one per hook), with its own ``MlflowClient``."""
        return self.registry

    def test_connection(self) -> tuple[bool, str]:
        from airflow_mlops.core.redaction import describe_error

        try:
            self.get_conn().client.search_experiments(max_results=1)
        except Exception as exc:
            return False, f"cannot reach MLflow at {self.tracking_uri}: {describe_error(exc)}"
        return True, f"MLflow reachable at {self.tracking_uri}"


def split_userinfo(uri: str) -> tuple[str, str | None, str | None]:
    """``http://user:password@host/...`` -> (``http://host/...``, user, password); others unchanged."""
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return uri, None, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=hostport)), unquote(user) or None, unquote(password) or None


def _mask(value: str) -> None:
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # outside a task runner
        return
    mask_secret(value)
