"""The MLflow hook: an Airflow Connection of type ``mlflow`` becomes a ``Registry``.

Connection fields (the form's labels come from ``provider_info``): ``host`` is the tracking
server (``http://mlflow:5000``, or a full URI such as ``sqlite:////path/mlflow.db``), ``port``
optional; ``login`` / ``password`` (or a ``user:password@`` in an http(s) host) become MLflow's
basic-auth variables, ``extra.token`` its bearer token. ``extra.registry_uri`` names a model
registry that is not the tracking server; ``extra.ui_url`` where a browser reaches the MLflow UI
(the operators' links; default: an http(s) tracking URI). Credentials are set in the task's
environment only and registered with Airflow's secrets masker; the URIs the hook hands out
(``get_uri``, ``registry_uri``, ``ui_url``) and the ``Registry`` built from them (``get_conn``)
never hold them.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import TYPE_CHECKING, NamedTuple

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from airflow_mlops.core.registry.client import Registry


class MlflowTarget(NamedTuple):
    """What an ``mlflow`` connection names: URIs without credentials, and the credentials."""

    tracking_uri: str
    registry_uri: str | None
    ui_url: str | None
    login: str | None
    password: str | None
    token: str | None


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

    @cached_property
    def target(self) -> MlflowTarget:
        """The connection read once: URIs without credentials, credentials apart. Sets nothing."""
        conn = self.get_connection(self.mlflow_conn_id)
        host = (conn.host or "").rstrip("/")
        if not host:
            raise ValueError(f"connection '{self.mlflow_conn_id}' has no host (the MLflow tracking URI)")
        if "://" not in host:
            host = f"http://{host}"
        if conn.port and host.startswith(("http://", "https://")):
            host = f"{host}:{conn.port}"
        host, login, password = split_userinfo(host)
        extra = conn.extra_dejson or {}
        registry, registry_login, registry_password = split_userinfo(str(extra.get("registry_uri") or "").rstrip("/"))
        ui_url = split_userinfo(str(extra.get("ui_url") or "").rstrip("/"))[0]
        if not ui_url and host.startswith(("http://", "https://")):
            ui_url = host
        return MlflowTarget(
            tracking_uri=host,
            registry_uri=registry or None,
            ui_url=ui_url if ui_url.startswith(("http://", "https://")) else None,
            login=conn.login or login or registry_login,
            password=conn.password or password or registry_password,
            token=str(extra["token"]) if extra.get("token") else None,
        )

    @cached_property
    def tracking_uri(self) -> str:
        target = self.target
        # Credentials go to MLflow's own environment variables, so they never reach logs or XCom;
        # Airflow's secrets masker hides them in task logs should a library print them anyway.
        for variable, value in (("MLFLOW_TRACKING_USERNAME", target.login),
                                ("MLFLOW_TRACKING_PASSWORD", target.password),
                                ("MLFLOW_TRACKING_TOKEN", target.token)):  # fmt: skip
            if value:
                os.environ[variable] = value
                if variable != "MLFLOW_TRACKING_USERNAME":
                    _mask(value)
        return target.tracking_uri

    def get_uri(self) -> str:
        """The tracking URI (without credentials), for what needs the text: the serving config, links."""
        return self.tracking_uri

    @property
    def registry_uri(self) -> str:
        """The model registry's URI: ``extra.registry_uri``, else the tracking URI (no credentials)."""
        return self.target.registry_uri or self.target.tracking_uri

    def ui_url(self) -> str | None:
        """Where a browser opens the MLflow UI (``extra.ui_url``, else an http(s) tracking URI), or
        None (a database or file store has no UI). Never holds credentials; sets none."""
        return self.target.ui_url

    @cached_property
    def registry(self) -> Registry:
        from airflow_mlops.core.registry.client import Registry

        tracking = self.tracking_uri  # sets the credentials first
        return Registry(tracking, self.target.registry_uri)

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
