"""The registry over MLflow's REST API, without the MLflow client: what a serving process asks.

Importing ``mlflow`` costs a serving worker pandas and SciPy (MLflow's own package imports
them) and about a second of start-up, for three reads and one download. Over HTTP (the
production shape: the serving app asks the tracking server) this module does them itself:

- ``HttpAliasProbe``: which version holds ``champion`` now (one async GET per poll);
- ``RestRegistry``: a version's number, run and tags (by alias or number), a run's artifact
  location, and the bytes of an ONNX graph: proxied by the server (``mlflow-artifacts:``)
  or a local file. A graph in another store (S3, GCS, ...) is left to the MLflow client
  (``read`` answers None), and so is a server that needs MLflow's auth plugins or TLS
  certificate settings (``serves_over_rest``).

The client's settings are honoured as MLflow's client honours them: ``MLFLOW_TRACKING_TOKEN``
(bearer) or ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` (basic),
``MLFLOW_TRACKING_INSECURE_TLS``, and for the reads of a load ``MLFLOW_HTTP_REQUEST_TIMEOUT``
and the retry of transient answers (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``,
``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR``, ``MLFLOW_HTTP_REQUEST_BACKOFF_JITTER``, same defaults).
"""

from __future__ import annotations

import os
import random
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from airflow_mlops.core.registry import client as registry

# Variables only the MLflow client understands: with any of them set, loads go through it.
MLFLOW_ONLY_ENV = ("MLFLOW_TRACKING_AUTH", "MLFLOW_TRACKING_SERVER_CERT_PATH", "MLFLOW_TRACKING_CLIENT_CERT_PATH")
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})  # what MLflow's client retries
MAX_BACKOFF_SECONDS = 120.0  # urllib3's cap, which MLflow's client inherits
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts/"


def client_settings(tracking_uri: str) -> dict[str, Any]:
    """Keyword arguments of an httpx client that talks to the tracking server like MLflow's client."""
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    return {
        "base_url": tracking_uri.rstrip("/"),
        "headers": {"Authorization": f"Bearer {token}"} if token else None,
        "auth": (user, password) if user and password and not token else None,
        "verify": os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() != "true",
    }


def serves_over_rest(tracking_uri: str) -> bool:
    """Whether loads from ``tracking_uri`` go through ``RestRegistry`` (else through the MLflow client)."""
    return tracking_uri.startswith(("http://", "https://")) and not any(os.environ.get(v) for v in MLFLOW_ONLY_ENV)


def _error_of(answer: Any, any_content_type: bool = False) -> tuple[str, str]:
    """(error_code, message) of an MLflow error answer; empty strings when it is not a JSON object
    (declared ``application/json``, unless ``any_content_type``: MLflow's client parses any body)."""
    if not any_content_type and not answer.headers.get("content-type", "").startswith("application/json"):
        return "", ""
    try:
        error = answer.json()
    except ValueError:
        return "", ""
    if not isinstance(error, dict):
        return "", ""
    return str(error.get("error_code", "")), str(error.get("message", ""))


class HttpAliasProbe:
    """Asks an MLflow tracking server over REST which version holds ``champion``.

    The registry client would cost ~10 ms of interpreter time per poll (in a thread, but
    holding the GIL the event loop needs); one small async GET costs well under 1 ms and
    never blocks the loop.
    """

    def __init__(self, tracking_uri: str, name: str) -> None:
        import httpx

        self._client = httpx.AsyncClient(timeout=10.0, **client_settings(tracking_uri))
        self._params = {"name": name, "alias": registry.CHAMPION_ALIAS}

    async def __call__(self) -> str | None:
        answer = await self._client.get("/api/2.0/mlflow/registered-models/alias", params=self._params)
        if answer.status_code in (400, 404) and registry.is_not_found(*_error_of(answer)):
            return None  # the registry client's own test: no such model, or no champion yet
        answer.raise_for_status()
        return str(answer.json()["model_version"]["version"])

    async def close(self) -> None:
        await self._client.aclose()


class RegistryError(RuntimeError):
    """The tracking server refused a read; the text is MLflow's client's (``CODE: message``)."""


@dataclass(frozen=True)
class VersionRecord:
    """What a load needs of a registered model version."""

    version: str
    run_id: str
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_rest(cls, model_version: dict[str, Any]) -> VersionRecord:
        tags = {str(t["key"]): str(t.get("value", "")) for t in model_version.get("tags", [])}
        return cls(str(model_version["version"]), str(model_version.get("run_id") or ""), tags)


class RestRegistry:
    """The reads of one model load, over the tracking server's REST API (sync: a load runs in a thread)."""

    def __init__(self, tracking_uri: str, transport: Any = None) -> None:
        """``transport``: an httpx transport instead of the network (tests)."""
        import httpx

        self.tracking_uri = tracking_uri
        self._base = tracking_uri.rstrip("/")
        timeout = float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT") or 120)
        self._client = httpx.Client(timeout=timeout, transport=transport, **client_settings(tracking_uri))
        self._retries = min(int(os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES") or 7), 10)
        self._backoff = float(os.environ.get("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR") or 2)
        self._jitter = float(os.environ.get("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER") or 1.0)

    def close(self) -> None:
        self._client.close()

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET ``path``, retrying transient failures as MLflow's client does (urllib3's backoff:
        the first retry at once, then ``factor * 2**n`` seconds plus jitter, at most 120)."""
        import httpx

        for attempt in range(self._retries + 1):
            if attempt > 1:
                backoff = self._backoff * 2 ** (attempt - 1) + random.uniform(0, self._jitter)
                time.sleep(min(backoff, MAX_BACKOFF_SECONDS))
            try:
                answer = self._client.get(path, params=params)
            except httpx.TransportError as exc:
                if attempt == self._retries:  # MLflow's client's words (its URL too, redacted when shown)
                    raise RegistryError(f"API request to {self._base}{path} failed with exception {exc!r}") from exc
                continue
            if answer.status_code not in TRANSIENT_STATUS or attempt == self._retries:
                return answer
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def _json(self, path: str, params: dict[str, str], missing_ok: bool = False) -> dict[str, Any] | None:
        """The JSON answer of an API read. An error answer raises ``RegistryError`` with MLflow's
        code and message, except "not found" with ``missing_ok`` (then None)."""
        answer = self._get(path, params)
        if answer.status_code == 200:
            return dict(answer.json())
        code, message = _error_of(answer, any_content_type=True)
        if missing_ok and registry.is_not_found(code, message):
            return None
        if code:
            raise RegistryError(f"{code}: {message}")
        raise RegistryError(_refused(path, answer))

    def champion(self, name: str) -> VersionRecord | None:
        """The version holding the ``champion`` alias, or None when there is none (like ``registry.champion``)."""
        return self.alias(name, registry.CHAMPION_ALIAS)

    def alias(self, name: str, alias: str) -> VersionRecord | None:
        """The version holding ``alias``, or None when there is none (or no such model)."""
        found = self._json("/api/2.0/mlflow/registered-models/alias", {"name": name, "alias": alias}, missing_ok=True)
        return None if found is None else VersionRecord.from_rest(found["model_version"])

    def model_tags(self, name: str) -> dict[str, str]:
        """The registered model's tags (its promotion history among them); empty when there is no such model."""
        found = self._json("/api/2.0/mlflow/registered-models/get", {"name": name}, missing_ok=True)
        tags = dict(found or {}).get("registered_model", {}).get("tags", [])
        return {str(t["key"]): str(t.get("value", "")) for t in tags}

    def version(self, name: str, version: str) -> VersionRecord:
        found = self._json("/api/2.0/mlflow/model-versions/get", {"name": name, "version": version})
        return VersionRecord.from_rest(dict(found or {})["model_version"])

    def run_artifact_uri(self, run_id: str) -> str | None:
        found = self._json("/api/2.0/mlflow/runs/get", {"run_id": run_id})
        return str(dict(found or {})["run"]["info"].get("artifact_uri") or "") or None

    def read(self, uri: str, run_id: str) -> bytes | None:
        """The bytes of the graph file ``uri`` (checked by ``refusal`` before), or None for the MLflow client.

        ``runs:/<run>/<path>`` is resolved to the run's artifact location first. Read here:
        the server's proxied store (``mlflow-artifacts:``) and local files; a folder or any
        other store is left to the MLflow client.
        """
        if uri.startswith("runs:/"):
            run, _, path = uri[len("runs:/") :].partition("/")
            root = self.run_artifact_uri(run or run_id)
            if root is None:
                return None  # a run without a location of its own: MLflow's client knows the default
            uri = f"{root.rstrip('/')}/{path}"
        if not uri.endswith(".onnx"):
            return None
        parts = urllib.parse.urlsplit(uri)
        if parts.scheme == "mlflow-artifacts":
            answer = self._get(ARTIFACTS_API + urllib.parse.quote(parts.path.lstrip("/")))
            if answer.status_code != 200:
                code, message = _error_of(answer, any_content_type=True)
                raise RegistryError(f"{code}: {message}" if code else _refused(ARTIFACTS_API, answer))
            return bytes(answer.content)
        if parts.scheme in ("", "file"):
            path = urllib.request.url2pathname(parts.path) if parts.scheme == "file" else uri
            with open(path, "rb") as handle:
                return handle.read()
        return None


def _refused(endpoint: str, answer: Any) -> str:
    """An error answer that is not MLflow's JSON, in MLflow's client's words."""
    return (
        f"API request to endpoint {endpoint} failed with error code {answer.status_code} != 200. "
        f"Response body: '{answer.text[:1000]}'"
    )
