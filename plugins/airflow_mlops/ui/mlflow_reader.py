"""What the model page reads of MLflow, over its REST API, cached for a few seconds.

The page runs inside Airflow's api-server. Importing the MLflow client there would cost the
api-server pandas, SciPy and a second of the first request, for reads that are a handful of
GETs; so this module asks the tracking server itself with httpx (as the serving app does,
``serving.registry_rest``), with the client's credentials from the environment, and keeps
each answer ``ttl_seconds`` (default 10 s): a page and its refreshes cost MLflow a few
requests per pipeline, whatever the number of people looking.

Answers are plain dicts shaped like MLflow's REST JSON, with tags flattened into dicts.
Errors of the server propagate (an outage is shown as such, never as "no champion").
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
API = "/api/2.0/mlflow"


class MlflowUnavailable(RuntimeError):
    """The tracking server answered with an error or could not be reached."""


def _tags(items: list[dict[str, str]] | None) -> dict[str, str]:
    return {item["key"]: item.get("value", "") for item in items or []}


def _run(raw: dict[str, Any]) -> dict[str, Any]:
    info, data = raw.get("info", {}), raw.get("data", {})
    return {
        "run_id": info.get("run_id"),
        "run_name": info.get("run_name"),
        "experiment_id": info.get("experiment_id"),
        "status": info.get("status"),
        "start_time": info.get("start_time"),
        "end_time": info.get("end_time"),
        "metrics": {m["key"]: m.get("value") for m in data.get("metrics", [])},
        "params": {p["key"]: p.get("value") for p in data.get("params", [])},
        "tags": _tags(data.get("tags")),
    }


def _version(raw: dict[str, Any]) -> dict[str, Any]:
    """A model version of MLflow's REST JSON as the pages use it."""
    return {
        "version": str(raw["version"]),
        "created": int(raw.get("creation_timestamp", 0)),
        "run_id": raw.get("run_id"),
        "tags": _tags(raw.get("tags")),
        "description": raw.get("description", ""),
    }


class TtlCache:
    """Answers kept ``ttl`` seconds; an older answer (up to ``stale_for`` seconds) is served while a
    background thread asks again, so a page viewed now and then never waits for MLflow twice.

    One lock per key: concurrent misses of one key ask once. ``clear`` (after an action changed
    the registry) makes the next read ask the server.
    """

    def __init__(
        self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic, stale_for: float = 60.0
    ) -> None:
        self.ttl = ttl_seconds
        self.stale_for = stale_for
        self._clock = clock
        self._values: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self._locks: dict[tuple[Any, ...], threading.Lock] = {}
        self._refreshing: set[tuple[Any, ...]] = set()
        self._guard = threading.Lock()

    def _lock(self, key: tuple[Any, ...]) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def _compute(self, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        value = compute()
        self._values[key] = (self._clock(), value)
        return value

    def _refresh(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> None:
        try:
            with self._lock(key):
                self._compute(key, compute)
        except Exception:  # the stale answer stays; the next read past ``stale_for`` asks and raises
            pass
        finally:
            with self._guard:
                self._refreshing.discard(key)

    def get(self, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        hit = self._values.get(key)
        if hit is not None:
            age = self._clock() - hit[0]
            if age < self.ttl:
                return hit[1]  # type: ignore[no-any-return]
            if age < self.stale_for:
                with self._guard:
                    start = key not in self._refreshing
                    self._refreshing.add(key)
                if start:
                    threading.Thread(target=self._refresh, args=(key, compute), daemon=True).start()
                return hit[1]  # type: ignore[no-any-return]
        with self._lock(key):
            hit = self._values.get(key)
            if hit is not None and self._clock() - hit[0] < self.ttl:
                return hit[1]  # type: ignore[no-any-return]
            return self._compute(key, compute)

    def clear(self) -> None:
        """Forget everything (after an action changed the registry)."""
        self._values.clear()


class MlflowReader:
    """Registry and run reads of one tracking server (``http(s)://``), cached."""

    def __init__(self, tracking_uri: str, ttl_seconds: float = 10.0, transport: Any = None) -> None:
        if not tracking_uri.startswith(("http://", "https://")):
            raise ValueError(f"the model page reads MLflow over HTTP; not an http(s) tracking URI: {tracking_uri!r}")
        self.tracking_uri = tracking_uri.rstrip("/")
        from airflow_mlops.serving.registry_rest import client_settings  # the MLflow client's settings

        settings = client_settings(tracking_uri)
        self._http = httpx.Client(
            base_url=settings["base_url"],
            headers=settings["headers"],
            auth=settings["auth"],
            verify=settings["verify"],
            timeout=httpx.Timeout(10.0, connect=3.0),
            transport=transport,
        )
        self.cache = TtlCache(ttl_seconds, stale_for=6 * ttl_seconds)
        self._experiments: dict[str, str] = {}
        # What the page links to: the same server, never with credentials in the URL.
        parts = urllib.parse.urlsplit(self.tracking_uri)
        self.ui_base = urllib.parse.urlunsplit(
            (
                parts.scheme,
                parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else "",
                parts.path,
                "",
                "",
            )
        )

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any] | None:
        """The JSON answer; None for "does not exist" (404 / RESOURCE_DOES_NOT_EXIST)."""
        try:
            answer = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise MlflowUnavailable(f"MLflow at {self.ui_base} cannot be reached: {type(exc).__name__}") from exc
        if answer.status_code == 200:
            return dict(answer.json())
        body: dict[str, Any] = {}
        if answer.headers.get("content-type", "").startswith("application/json"):
            body = answer.json()
        code, message = str(body.get("error_code", "")), str(body.get("message", ""))
        if answer.status_code == 404 or code == "RESOURCE_DOES_NOT_EXIST" or "not found" in message.lower():
            return None
        raise MlflowUnavailable(f"MLflow answered {answer.status_code} to {path}: {code} {message}".strip())

    def registered_model(self, name: str) -> dict[str, Any] | None:
        """``{name, tags, aliases: {alias: version}, description}`` or None when there is no such model."""

        def ask() -> dict[str, Any] | None:
            body = self._call("GET", f"{API}/registered-models/get", params={"name": name})
            if body is None:
                return None
            model = body["registered_model"]
            return {
                "name": model["name"],
                "tags": _tags(model.get("tags")),
                "aliases": {a["alias"]: str(a["version"]) for a in model.get("aliases", [])},
                "description": model.get("description", ""),
            }

        return self.cache.get(("model", name), ask)

    def versions(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        """The newest ``limit`` versions, newest first: version, created (ms), run_id, tags, description."""

        def ask() -> list[dict[str, Any]]:
            params = {
                "filter": f"name='{name}'",
                "max_results": str(limit),
                "order_by": "version_number DESC",
            }
            body = self._call("GET", f"{API}/model-versions/search", params=params) or {}
            return [_version(v) for v in body.get("model_versions", [])]

        return self.cache.get(("versions", name, limit), ask)

    def alias_version(self, name: str, alias: str) -> dict[str, Any] | None:
        """The version ``alias`` points at (shaped as ``versions`` answers), or None."""

        def ask() -> dict[str, Any] | None:
            body = self._call("GET", f"{API}/registered-models/alias", params={"name": name, "alias": alias})
            if body is None:
                return None
            return _version(body["model_version"])

        return self.cache.get(("alias", name, alias), ask)

    def experiment_id(self, name: str) -> str | None:
        """The id of experiment ``name``; kept for good once found (an experiment's id never changes)."""
        if name in self._experiments:
            return self._experiments[name]

        def ask() -> str | None:
            body = self._call("GET", f"{API}/experiments/get-by-name", params={"experiment_name": name})
            return None if body is None else str(body["experiment"]["experiment_id"])

        found = self.cache.get(("experiment", name), ask)
        if found is not None:
            self._experiments[name] = found
        return found

    def recent_runs(self, experiment: str, limit: int = 200) -> list[dict[str, Any]]:
        """The newest ``limit`` runs of experiment ``experiment`` (by name), newest first."""

        def ask() -> list[dict[str, Any]]:
            experiment_id = self.experiment_id(experiment)
            if experiment_id is None:
                return []
            payload = {
                "experiment_ids": [experiment_id],
                "max_results": limit,
                "order_by": ["attributes.start_time DESC"],
            }
            body = self._call("POST", f"{API}/runs/search", json=payload) or {}
            return [_run(r) for r in body.get("runs", [])]

        return self.cache.get(("runs", experiment, limit), ask)

    def run(self, run_id: str) -> dict[str, Any] | None:
        def ask() -> dict[str, Any] | None:
            body = self._call("GET", f"{API}/runs/get", params={"run_id": run_id})
            return None if body is None else _run(body["run"])

        return self.cache.get(("run", run_id), ask)

    def artifact_names(self, run_id: str, folder: str) -> list[str]:
        """File names directly under ``folder`` of the run's artifacts."""

        def ask() -> list[str]:
            body = self._call("GET", f"{API}/artifacts/list", params={"run_id": run_id, "path": folder}) or {}
            return [f["path"] for f in body.get("files", []) if not f.get("is_dir")]

        return self.cache.get(("artifacts", run_id, folder), ask)

    def artifact(self, run_id: str, path: str) -> bytes | None:
        """One artifact's bytes through the tracking server (``/get-artifact``), or None when missing."""

        def ask() -> bytes | None:
            try:
                answer = self._http.get("/get-artifact", params={"path": path, "run_uuid": run_id})
            except httpx.HTTPError as exc:
                raise MlflowUnavailable(
                    f"MLflow at {self.tracking_uri} cannot be reached: {type(exc).__name__}"
                ) from exc
            if answer.status_code in (400, 404):
                return None
            if answer.status_code != 200:
                raise MlflowUnavailable(f"MLflow answered {answer.status_code} for artifact {path}")
            return bytes(answer.content)

        return self.cache.get(("artifact", run_id, path), ask)

    def json_artifact(self, run_id: str, path: str) -> Any:
        import json

        raw = self.artifact(run_id, path)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def run_url(self, experiment_id: str | None, run_id: str) -> str:
        return f"{self.ui_base}/#/experiments/{experiment_id or '0'}/runs/{run_id}"

    def version_url(self, name: str, version: str) -> str:
        return f"{self.ui_base}/#/models/{name}/versions/{version}"
