"""Retrain once when what is trained changed: the code-change watcher (``mlops.<pipeline>.code_change``).

``CodeChangeTrigger`` runs in an ``AssetWatcher`` of the training DAG. Its kwargs carry the
deployed spec's training fingerprint (computed by the DAG processor at parse time), so the
triggerer never reads the spec file, and an edit that leaves the fingerprint alone leaves the
trigger's hash, and so the running trigger, alone; an edit that changes it makes Airflow replace
the trigger with one carrying the new fingerprint. Every ``poll_interval`` it asks MLflow's REST
API (httpx, no mlflow import) for the champion's ``training_fingerprint`` tag and whether any
version already carries the new one, then ``core.landing.code_change.decide`` says whether to fire.

What it fired is kept in Airflow's asset state store (``asset_state_store``, per Asset, in the
metadata database), written before the event is yielded: a restarted triggerer, or the trigger
replaced by a re-parse, does not fire twice for the same (fingerprint, champion). The price is
at most once: a triggerer killed between that write and the event being stored (well under a
second) loses the event; any later training run trains with the changed spec anyway, and a
manual run covers it (docs/concepts.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

MAX_ERROR_BACKOFF_SECONDS = 600.0


def _not_found(answer: Any) -> bool:
    """MLflow's answer for "no such model" or "no such alias" (``core.registry.client.is_not_found``)."""
    from airflow_mlops.core.registry.client import is_not_found

    try:
        error = answer.json()
    except ValueError:
        return False
    return isinstance(error, dict) and is_not_found(str(error.get("error_code", "")), str(error.get("message", "")))


class CodeChangeTrigger(BaseEventTrigger):
    """Fire once per distinct (training fingerprint, champion) when the champion was trained otherwise.

    Payload: ``change``, ``fingerprint``, ``champion_version``, ``champion_fingerprint``, ``reason``
    (``core.landing.code_change.CodeChangeEvent``).

    :param registered_model: the registered model whose champion is compared.
    :param fingerprint: the deployed spec's ``training_fingerprint()``.
    :param mlflow_conn_id: the ``mlflow`` connection; its tracking URI must be http(s).
    :param poll_interval: seconds between looks at the registry.
    """

    def __init__(
        self,
        *,
        registered_model: str,
        fingerprint: str,
        mlflow_conn_id: str = "mlflow_default",
        poll_interval: float = 60.0,
    ) -> None:
        super().__init__()
        self.registered_model = registered_model
        self.fingerprint = fingerprint
        self.mlflow_conn_id = mlflow_conn_id
        self.poll_interval = poll_interval
        self._memory: dict[str, Any] = {}  # without Airflow's state store (a test): this instance only

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "registered_model": self.registered_model,
                "fingerprint": self.fingerprint,
                "mlflow_conn_id": self.mlflow_conn_id,
                "poll_interval": self.poll_interval,
            },
        )

    async def _stored(self, key: str) -> Any:
        store = getattr(self, "asset_state_store", None)
        return await store.aget(key) if store is not None else self._memory.get(key)

    async def _store(self, key: str, value: Any) -> None:
        store = getattr(self, "asset_state_store", None)
        if store is not None:
            await store.aset(key, value)
        else:
            self._memory[key] = value

    def client_settings(self) -> dict[str, Any]:
        """httpx client arguments from the ``mlflow`` connection (URI and credentials, none logged)."""
        from airflow_mlops.hooks.mlflow import MlflowHook

        target = MlflowHook(self.mlflow_conn_id).target
        uri = target.registry_uri or target.tracking_uri
        if not uri.startswith(("http://", "https://")):
            raise ValueError(
                f"connection '{self.mlflow_conn_id}' is not an http(s) tracking server ({uri.split(':')[0]})"
            )
        headers = {"Authorization": f"Bearer {target.token}"} if target.token else None
        auth = (target.login, target.password) if target.login and target.password and not target.token else None
        return {"base_url": uri.rstrip("/"), "headers": headers, "auth": auth, "timeout": 30.0}

    async def look(self, client: Any) -> Any:
        """One look at the registry: the ``Decision`` of ``core.landing.code_change``."""
        from airflow_mlops.core.landing import code_change

        answer = await client.get(
            "/api/2.0/mlflow/registered-models/alias", params={"name": self.registered_model, "alias": "champion"}
        )
        if answer.status_code in (400, 404) and _not_found(answer):
            return code_change.decide(self.fingerprint, None, None, False, [])
        answer.raise_for_status()
        version = answer.json()["model_version"]
        tags = {str(t["key"]): str(t.get("value", "")) for t in version.get("tags", [])}
        champion, champion_fingerprint = str(version["version"]), tags.get(code_change.FINGERPRINT_TAG)
        trained = False
        if champion_fingerprint and champion_fingerprint != self.fingerprint:
            found = await client.get(
                "/api/2.0/mlflow/model-versions/search",
                params={
                    "filter": f"name='{self.registered_model}' and "
                    f"tags.{code_change.FINGERPRINT_TAG}='{self.fingerprint}'",
                    "max_results": "1",
                },
            )
            found.raise_for_status()
            trained = bool(found.json().get("model_versions"))
        fired = code_change.fired_list(await self._stored(code_change.FIRED_KEY))
        return code_change.decide(self.fingerprint, champion, champion_fingerprint, trained, fired)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import httpx

        from airflow_mlops.core.landing import code_change

        said, errors = "", 0
        client: httpx.AsyncClient | None = None
        try:
            while True:
                try:
                    if client is None:
                        client = httpx.AsyncClient(**self.client_settings())
                    decision = await self.look(client)
                except Exception as exc:  # registry down, connection missing: keep watching, slower
                    errors += 1
                    delay = min(self.poll_interval * 2**errors, MAX_ERROR_BACKOFF_SECONDS)
                    self.log.warning("code-change watcher of %s: %s; next look in %.0f s",
                                     self.registered_model, exc, delay)  # fmt: skip
                    await asyncio.sleep(delay)
                    continue
                errors = 0
                if decision.why != said:
                    self.log.info("code-change watcher of %s: %s", self.registered_model, decision.why)
                    said = decision.why
                if decision.event is not None:
                    fired = code_change.fired_list(await self._stored(code_change.FIRED_KEY))
                    await self._store(code_change.FIRED_KEY, list(code_change.remember(fired, decision.event)))
                    yield TriggerEvent(dict(decision.event))
                    return  # the triggerer starts the trigger again; the stored key keeps it quiet
                await asyncio.sleep(self.poll_interval)
        finally:
            if client is not None:
                await client.aclose()
