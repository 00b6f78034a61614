"""MLflow as experiment tracker and model registry: one ``Registry`` object per tracking server.

A ``Registry`` is built from a tracking URI (the MLflow hook builds it from an Airflow
connection; the serving app and the command line from their configuration) and holds its own
``MlflowClient``: experiments and runs (``core.registry.runs``), artifact downloads, model
versions and the ``champion`` lookup, none through MLflow's process-wide URIs.

Light on purpose (mlflow only, imported inside the methods): the serving app looks the
champion up through it. Logging and loading models (skops, scikit-learn) are
``core.registry.tracking``; moves of the ``champion`` alias and their history are
``core.registry.promotion``; the checks of a version's artifacts ``core.registry.integrity``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import tempfile
from typing import Any

from airflow_mlops.core.contracts import PromotionRecord
from airflow_mlops.core.registry.runs import Tracking

log = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"  # the gate's winner the serving app shadows (rollout.shadow)
# Every move of the alias, newest last (bounded, see ``core.registry.promotion``); written only there.
HISTORY_TAG = "promotion_history"

_METRIC_NAME_OUTSIDE = re.compile(r"[^A-Za-z0-9_\-. :/]")


def metric_name(text: str) -> str:
    """``text`` (e.g. ``psi_<column>``) as an MLflow metric name, which allows only letters,
    digits and ``_-. :/``. Other characters become ``_`` and a short hash of the original is
    appended, so two columns that differ only there (``a(b`` and ``a)b``) keep two metrics."""
    cleaned = _METRIC_NAME_OUTSIDE.sub("_", text)
    if cleaned != text:
        cleaned = f"{cleaned[:240]}_{hashlib.sha1(text.encode()).hexdigest()[:6]}"
    return cleaned[:250]


def _is_not_found(exc: Exception) -> bool:
    return is_not_found(getattr(exc, "error_code", ""), str(exc))


def is_not_found(code: str, message: str) -> bool:
    """An MLflow error that means "no such model" or "no such alias" (not an outage)."""
    text = message.lower()
    return code == "RESOURCE_DOES_NOT_EXIST" or (
        code == "INVALID_PARAMETER_VALUE" and "alias" in text and ("not found" in text or "does not exist" in text)
    )


class Registry(Tracking):
    """One MLflow tracking server (or database store) and its model registry.

    ``Registry(tracking_uri)``, or ``Registry(tracking_uri, registry_uri)`` when the model
    registry is elsewhere; the URI never holds credentials (the hook puts them in MLflow's
    own variables).
    """

    def _underlying(self, uri: str) -> str:
        """A ``models:/`` URI as the artifact location it names, resolved with this registry's client.

        MLflow's own resolution asks the process-wide registry URI; every other URI is returned as is.
        """
        if not uri.startswith("models:/"):
            return uri
        from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository
        from mlflow.store.artifact.utils.models import get_model_name_and_version

        base, below = ModelsArtifactRepository.split_models_uri(uri)
        found = get_model_name_and_version(self.client, base)
        if len(found) == 1:
            root = str(self.client.get_logged_model(found[0]).artifact_location)
        else:
            root = str(self.client.get_model_version_download_uri(*found))
        return f"{root.rstrip('/')}/{below}" if below else root

    def download(self, uri: str, into: str) -> str:
        """Download the artifact(s) at ``uri`` (``runs:/``, ``models:/``, a store URI) into ``into``; the path."""
        import mlflow

        local = mlflow.artifacts.download_artifacts(
            artifact_uri=self._underlying(uri), dst_path=into, tracking_uri=self.tracking_uri,
            registry_uri=self.registry_uri,
        )  # fmt: skip
        return str(local)

    def champion(self, name: str) -> Any | None:
        """The model version holding the ``champion`` alias, or None when there is none.

        Only "not found" means no champion; any other error (server down, permission) is raised,
        so an outage can never be mistaken for an empty registry and let a candidate through.
        """
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(name, CHAMPION_ALIAS)
        except MlflowException as exc:
            if _is_not_found(exc):
                return None
            raise

    def champion_profile(self, name: str) -> dict[str, Any] | None:
        """The training-data profile logged on the champion's MLflow run, or None."""
        current = self.champion(name)
        if current is None or not current.run_id:
            return None
        try:
            return self.run_json(current.run_id, "data/profile.json")
        except Exception:  # an older champion without a profile: no inference, not an error
            return None

    def run_json(self, run_id: str, artifact: str) -> dict[str, Any]:
        """The JSON object logged as ``artifact`` on MLflow run ``run_id`` (raises when it cannot be read)."""
        with tempfile.TemporaryDirectory(prefix="airflow-mlops-artifact-") as tmp:
            path = self.download(f"runs:/{run_id}/{artifact}", tmp)
            with open(path, encoding="utf-8") as handle:
                return dict(json.load(handle))

    def register(self, name: str, model_uri: str, tags: dict[str, str], run_id: str) -> str:
        """Register ``model_uri`` (logged on MLflow run ``run_id``) as a version of ``name``; return it.

        Safe to retry: a version registered from ``run_id`` before (a task killed after MLflow
        created it, before its result was saved) is reused, with any tag that differs set again,
        instead of registering a twin beside it. ``mlflow.register_model`` (and the SQL store
        behind it) reads the process-wide URIs: it runs inside ``process_uris``.
        """
        import mlflow

        earlier = self.registered_from_run(name, run_id)
        if earlier is not None:
            missing = {k: v for k, v in tags.items() if earlier.tags.get(k) != v}
            self.tag_version(name, str(earlier.version), missing)
            log.info("%s v%s was already registered from run %s: reused", name, earlier.version, run_id)
            return str(earlier.version)
        with self.process_uris():
            version = mlflow.register_model(model_uri=model_uri, name=name, tags=tags, await_registration_for=60)
        return str(version.version)

    def registered_from_run(self, name: str, run_id: str) -> Any | None:
        """The oldest version of ``name`` registered from MLflow run ``run_id``, or None."""
        from mlflow.exceptions import MlflowException

        if not re.fullmatch(r"[0-9A-Za-z_-]+", run_id):
            raise ValueError(f"not an MLflow run id: {run_id!r}")
        try:
            versions = self.client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
        except MlflowException as exc:
            if _is_not_found(exc):
                return None
            raise
        return min(versions, key=lambda v: int(v.version), default=None)

    def versions_trained_on(
        self, name: str, data_fingerprint: str, spec_fingerprint: str, code_version: str | None = None
    ) -> list[str]:
        """Versions of ``name`` already trained on this exact data with this exact spec (and code version)."""
        from mlflow.exceptions import MlflowException

        try:
            versions = self.client.search_model_versions(f"name='{name}'")
        except MlflowException as exc:
            if _is_not_found(exc):
                return []
            raise
        return sorted(
            (str(v.version) for v in versions
             if v.tags.get("data_fingerprint") == data_fingerprint
             and v.tags.get("spec_fingerprint") == spec_fingerprint
             and (code_version is None or v.tags.get("code_version") == code_version)),
            key=int,
        )  # fmt: skip

    def tag_version(self, name: str, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(name, version, key, value)

    def promotion_history(self, name: str) -> list[PromotionRecord]:
        """The recorded moves of ``champion`` (``core.registry.promotion`` writes them), oldest first."""
        model = self.client.get_registered_model(name)
        return list(json.loads(model.tags.get(HISTORY_TAG, "[]")))

    def version_details(self, name: str, version: str) -> dict[str, Any]:
        """A version's tags and its run's params and metrics (what a model card shows)."""
        model_version = self.client.get_model_version(name, version)
        details: dict[str, Any] = {
            "name": name,
            "version": str(version),
            "run_id": model_version.run_id,
            "source": model_version.source,
            "created": dt.datetime.fromtimestamp(model_version.creation_timestamp / 1000, dt.UTC).isoformat(
                timespec="seconds"
            ),
            "tags": dict(model_version.tags),
            "params": {},
            "metrics": {},
        }
        if model_version.run_id:
            run = self.client.get_run(model_version.run_id)
            details["params"] = dict(run.data.params)
            details["metrics"] = dict(run.data.metrics)
        return details

    def publish_model_card(self, name: str, version: str, card: str) -> None:
        """The card becomes the version's description (shown in the MLflow UI) and a run artifact."""
        self.client.update_model_version(name, version, description=card)
        model_version = self.client.get_model_version(name, version)
        if model_version.run_id:
            with tempfile.TemporaryDirectory(prefix="airflow-mlops-card-") as folder:
                path = os.path.join(folder, "model_card.md")
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(card)
                self.client.log_artifact(model_version.run_id, path)
