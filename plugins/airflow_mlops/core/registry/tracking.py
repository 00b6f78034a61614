"""MLflow as experiment tracker and model registry.

Models are logged with skops, never pickle. Loading goes through ``load_model``,
which trusts only the exact types listed in ``TRUSTED_TYPES`` (what the allow-listed
estimators need beyond skops' defaults), never a list read from the artifact itself.
Moves of the ``champion`` alias (promotion, rollback) and their history are written by
``core.registry.promotion``; the checks of a version's artifacts are ``core.registry.integrity``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from typing import Any

import yaml

from airflow_mlops.core.contracts import PromotionRecord

log = logging.getLogger(__name__)
# tqdm bars of artifact downloads fill task logs with carriage returns; nobody watches them.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

CHAMPION_ALIAS = "champion"
# Every move of the alias, newest last (bounded, see ``core.registry.promotion``); written only there.
HISTORY_TAG = "promotion_history"
# Types beyond skops' defaults that the allow-listed estimators need. ``Tree`` is not trusted by
# skops by default; we trust it only for artifacts this package logged to the registry.
TRUSTED_TYPES = frozenset(
    {
        "numpy.dtype",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.tree._tree.Tree",
        # Our own step that turns raw rows into model inputs (``core.model.raw_inputs``): plain lists only.
        "airflow_mlops.core.model.raw_inputs.ModelInputTransformer",
    }
)


_METRIC_NAME_OUTSIDE = re.compile(r"[^A-Za-z0-9_\-. :/]")


def metric_name(text: str) -> str:
    """``text`` (e.g. ``psi_<column>``) as an MLflow metric name, which allows only letters,
    digits and ``_-. :/``. Other characters become ``_`` and a short hash of the original is
    appended, so two columns that differ only there (``a(b`` and ``a)b``) keep two metrics."""
    cleaned = _METRIC_NAME_OUTSIDE.sub("_", text)
    if cleaned != text:
        cleaned = f"{cleaned[:240]}_{hashlib.sha1(text.encode()).hexdigest()[:6]}"
    return cleaned[:250]


class UntrustedModelError(RuntimeError):
    """The serialized model references types outside the trust policy."""


def client(tracking_uri: str) -> Any:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


DATABASE_SCHEMES = ("sqlite:", "postgresql", "mysql", "mssql")


def use_experiment(tracking_uri: str, name: str) -> None:
    """Make ``name`` the active experiment, creating it if needed.

    A tracking server decides where artifacts go. With a database URI (no server) MLflow
    would put them in ``./mlruns`` of whatever the working directory is, so new experiments
    get a location under the artifact root instead.
    """
    import mlflow

    from airflow_mlops import layout as settings

    mlflow_client = client(tracking_uri)
    if tracking_uri.startswith(DATABASE_SCHEMES) and mlflow_client.get_experiment_by_name(name) is None:
        location = settings.join(settings.artifact_root(), "mlflow", name)
        if "://" not in location:
            location = f"file://{os.path.abspath(location)}"
        mlflow_client.create_experiment(name, artifact_location=location)
    mlflow.set_experiment(name)


def trusted_types_for(model: Any) -> list[str]:
    """The non-default types a skops dump of ``model`` needs, checked against our policy."""
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    _refuse_untrusted(untrusted, "model")
    return sorted(untrusted)


def _refuse_untrusted(untrusted: list[str], what: str) -> None:
    outside = sorted(set(untrusted) - TRUSTED_TYPES)
    if outside:
        raise UntrustedModelError(f"{what} references types outside the trust policy: {outside}")


@dataclass(frozen=True)
class LoggedModel:
    run_id: str
    model_uri: str
    experiment_id: str


def start_parent_run(tracking_uri: str, experiment: str, run_name: str, tags: dict[str, str]) -> tuple[str, str]:
    """Create the training run that trials nest under (left RUNNING); return (run_id, experiment_id).

    A retry of the same Airflow run (same ``airflow.dag_id`` and ``airflow.run_id`` tags)
    reuses the parent it opened before, instead of leaving it open beside a new one.
    """
    import mlflow

    use_experiment(tracking_uri, experiment)
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        raise RuntimeError(f"MLflow experiment '{experiment}' vanished right after it was set")
    experiment_id = found.experiment_id
    mlflow_client = client(tracking_uri)
    if tags.get("airflow.dag_id") and tags.get("airflow.run_id"):
        earlier = mlflow_client.search_runs(
            [experiment_id],
            filter_string=(
                f"tags.`airflow.dag_id` = '{tags['airflow.dag_id']}' and tags.`airflow.run_id` = "
                f"'{tags['airflow.run_id']}' and tags.role = 'training' and attributes.status = 'RUNNING'"
            ),
            max_results=1,
        )
        if earlier:
            return earlier[0].info.run_id, experiment_id
    run = mlflow_client.create_run(experiment_id, run_name=run_name, tags={**tags, "role": "training"})
    return run.info.run_id, experiment_id


def close_run_if_open(tracking_uri: str, run_id: str, status: str = "FAILED") -> bool:
    """End ``run_id`` with ``status`` if it is still RUNNING; True when it was.

    Its child runs still RUNNING (a trial whose process died between creating its run and
    ending it) end as KILLED first, whatever the parent's state: no run of a finished
    training stays RUNNING in MLflow.
    """
    mlflow_client = client(tracking_uri)
    parent = mlflow_client.get_run(run_id)
    children = mlflow_client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run_id}' and attributes.status = 'RUNNING'",
    )
    for child in children:
        log.warning("trial run %s of %s was left RUNNING (its task died): marked KILLED", child.info.run_id, run_id)
        mlflow_client.set_terminated(child.info.run_id, "KILLED")
    if parent.info.status != "RUNNING":
        return False
    mlflow_client.set_terminated(run_id, status)
    return True


def log_child_run(
    tracking_uri: str,
    experiment_id: str,
    parent_run_id: str,
    run_name: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
) -> str:
    """One finished trial: a child run of ``parent_run_id`` (MLflow nests it in the UI)."""
    mlflow_client = client(tracking_uri)
    run = mlflow_client.create_run(experiment_id, run_name=run_name, tags={**tags, "mlflow.parentRunId": parent_run_id})
    run_id = run.info.run_id
    try:
        for key, value in params.items():
            mlflow_client.log_param(run_id, key, str(value)[:500])
        for key, value in metrics.items():
            mlflow_client.log_metric(run_id, key, value)
    except Exception:
        mlflow_client.set_terminated(run_id, "FAILED")
        raise
    mlflow_client.set_terminated(run_id, "FINISHED")
    return run_id


def find_cached_trial(tracking_uri: str, experiment_id: str, cache_key: str) -> dict[str, Any] | None:
    """The newest finished trial run with ``cache_key`` (that fitted, not itself a cache hit)."""
    runs = client(tracking_uri).search_runs(
        [experiment_id],
        filter_string=f"tags.cache_key = '{cache_key}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=20,
    )
    for run in runs:
        if "cached_from" in run.data.tags:
            continue
        metrics = {k[4:]: v for k, v in run.data.metrics.items() if k.startswith("val_")}
        return {"run_id": run.info.run_id, "metrics": metrics}
    return None


def finish_run(tracking_uri: str, run_id: str, status: str = "FINISHED") -> None:
    client(tracking_uri).set_terminated(run_id, status)


def log_training_run(
    tracking_uri: str,
    experiment: str,
    run_name: str,
    model: Any,
    input_example: Any,
    params: dict[str, Any],
    tags: dict[str, str],
    metrics: dict[str, float] | None = None,
    json_artifacts: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> LoggedModel:
    """Log params/tags/metrics, JSON artifacts and the model (skops) on a new run, or on
    ``run_id`` (a parent run left open by ``start_parent_run``), and end the run."""
    import mlflow
    import mlflow.sklearn
    import sklearn
    import skops
    from mlflow.models import infer_signature

    use_experiment(tracking_uri, experiment)
    signature = infer_signature(input_example, model.predict(input_example))
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name, tags=tags) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        if metrics:
            mlflow.log_metrics(metrics)
        for path, content in (json_artifacts or {}).items():
            mlflow.log_dict(content, path)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format="skops",
            skops_trusted_types=trusted_types_for(model),
            signature=signature,
            input_example=input_example.head(5),
            pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"skops=={skops.__version__}"],
        )
    return LoggedModel(run_id=run.info.run_id, model_uri=info.model_uri, experiment_id=run.info.experiment_id)


def load_model(tracking_uri: str, model_uri: str, raw_inputs: bool = False) -> Any:
    """Download an MLflow sklearn model and load it with skops under our trust policy.

    The registered model takes raw rows (``core.model.raw_inputs``); unless ``raw_inputs``,
    the trained Pipeline inside it is returned, which takes ``training.feature_frame`` inputs.
    """
    import mlflow

    from airflow_mlops.core.model.raw_inputs import unwrap

    client(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="airflow-mlops-model-") as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp, tracking_uri=tracking_uri)
        with open(os.path.join(local, "MLmodel"), encoding="utf-8") as handle:
            flavor = yaml.safe_load(handle)["flavors"].get("sklearn")
        if not flavor or flavor.get("serialization_format") != "skops":
            raise UntrustedModelError(f"{model_uri} is not a skops-serialized scikit-learn model")
        model = load_skops_file(os.path.join(local, flavor["pickled_model"]), model_uri)
    return model if raw_inputs else unwrap(model)


def load_skops_file(path: str, what: str) -> Any:
    """Load a skops file, trusting only ``TRUSTED_TYPES`` beyond skops' defaults."""
    import skops.io

    untrusted = skops.io.get_untrusted_types(file=path)
    _refuse_untrusted(untrusted, what)
    return skops.io.load(path, trusted=untrusted)


def _is_not_found(exc: Exception) -> bool:
    return is_not_found(getattr(exc, "error_code", ""), str(exc))


def is_not_found(code: str, message: str) -> bool:
    """An MLflow error that means "no such model" or "no such alias" (not an outage)."""
    text = message.lower()
    return code == "RESOURCE_DOES_NOT_EXIST" or (
        code == "INVALID_PARAMETER_VALUE" and "alias" in text and ("not found" in text or "does not exist" in text)
    )


def champion(tracking_uri: str, name: str) -> Any | None:
    """The model version holding the ``champion`` alias, or None when there is none.

    Only "not found" means no champion; any other error (server down, permission) is raised,
    so an outage can never be mistaken for an empty registry and let a candidate through.
    """
    from mlflow.exceptions import MlflowException

    mlflow_client = client(tracking_uri)
    try:
        return mlflow_client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException as exc:
        if _is_not_found(exc):
            return None
        raise


def champion_profile(tracking_uri: str, name: str) -> dict[str, Any] | None:
    """The training-data profile logged on the champion's MLflow run, or None."""
    import mlflow

    current = champion(tracking_uri, name)
    if current is None or not current.run_id:
        return None
    try:
        return dict(mlflow.artifacts.load_dict(f"runs:/{current.run_id}/data/profile.json"))
    except Exception:  # an older champion without a profile: no inference, not an error
        return None


def register(tracking_uri: str, name: str, model_uri: str, tags: dict[str, str], run_id: str) -> str:
    """Register ``model_uri`` (logged on MLflow run ``run_id``) as a version of ``name``; return it.

    Safe to retry: a version registered from ``run_id`` before (a task killed after MLflow
    created it, before its result was saved) is reused, with any tag that differs set again,
    instead of registering a twin beside it.
    """
    import mlflow

    earlier = registered_from_run(tracking_uri, name, run_id)
    if earlier is not None:
        missing = {k: v for k, v in tags.items() if earlier.tags.get(k) != v}
        tag_version(tracking_uri, name, str(earlier.version), missing)
        log.info("%s v%s was already registered from run %s: reused", name, earlier.version, run_id)
        return str(earlier.version)
    client(tracking_uri)
    version = mlflow.register_model(model_uri=model_uri, name=name, tags=tags, await_registration_for=60)
    return str(version.version)


def registered_from_run(tracking_uri: str, name: str, run_id: str) -> Any | None:
    """The oldest version of ``name`` registered from MLflow run ``run_id``, or None."""
    from mlflow.exceptions import MlflowException

    if not re.fullmatch(r"[0-9A-Za-z_-]+", run_id):
        raise ValueError(f"not an MLflow run id: {run_id!r}")
    try:
        versions = client(tracking_uri).search_model_versions(f"name='{name}' and run_id='{run_id}'")
    except MlflowException as exc:
        if _is_not_found(exc):
            return None
        raise
    return min(versions, key=lambda v: int(v.version), default=None)


def versions_trained_on(
    tracking_uri: str, name: str, data_fingerprint: str, spec_fingerprint: str, code_version: str | None = None
) -> list[str]:
    """Versions of ``name`` already trained on this exact data with this exact spec (and code version)."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client(tracking_uri).search_model_versions(f"name='{name}'")
    except MlflowException as exc:
        if _is_not_found(exc):
            return []
        raise
    return sorted(
        (str(v.version) for v in versions
         if v.tags.get("data_fingerprint") == data_fingerprint and v.tags.get("spec_fingerprint") == spec_fingerprint
         and (code_version is None or v.tags.get("code_version") == code_version)),
        key=int,
    )  # fmt: skip


def tag_version(tracking_uri: str, name: str, version: str, tags: dict[str, str]) -> None:
    mlflow_client = client(tracking_uri)
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(name, version, key, value)


def promotion_history(tracking_uri: str, name: str) -> list[PromotionRecord]:
    """The recorded moves of ``champion`` (``core.registry.promotion`` writes them), oldest first."""
    model = client(tracking_uri).get_registered_model(name)
    return list(json.loads(model.tags.get(HISTORY_TAG, "[]")))


def version_details(tracking_uri: str, name: str, version: str) -> dict[str, Any]:
    """A version's tags and its run's params and metrics (what a model card shows)."""
    mlflow_client = client(tracking_uri)
    model_version = mlflow_client.get_model_version(name, version)
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
        run = mlflow_client.get_run(model_version.run_id)
        details["params"] = dict(run.data.params)
        details["metrics"] = dict(run.data.metrics)
    return details


def publish_model_card(tracking_uri: str, name: str, version: str, card: str) -> None:
    """The card becomes the version's description (shown in the MLflow UI) and a run artifact."""
    mlflow_client = client(tracking_uri)
    mlflow_client.update_model_version(name, version, description=card)
    model_version = mlflow_client.get_model_version(name, version)
    if model_version.run_id:
        with tempfile.TemporaryDirectory(prefix="airflow-mlops-card-") as folder:
            path = os.path.join(folder, "model_card.md")
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(card)
            mlflow_client.log_artifact(model_version.run_id, path)
