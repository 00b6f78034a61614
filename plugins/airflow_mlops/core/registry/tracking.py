"""Models in MLflow: a trained model logged with skops on its run, and loaded under the trust policy.

Models are logged with skops, never pickle. Loading goes through ``load_model``,
which trusts only the exact types listed in ``TRUSTED_TYPES`` (what the allow-listed
estimator families need beyond skops' defaults, ``core.model.estimators``), never a list
read from the artifact itself.
Both take the ``Registry`` (``core.registry.client``) the model lives in. Heavy (skops,
scikit-learn, the raw-input wrapper): the light registry calls are in ``core.registry.client``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any

import yaml

from airflow_mlops.core.model.estimators import trusted_types as estimator_trusted_types
from airflow_mlops.core.registry.client import Registry

# Types beyond skops' defaults that our Pipelines and the allow-listed estimator families need. ``Tree``
# is not trusted by skops by default; we trust it only for artifacts this package logged to the registry.
TRUSTED_TYPES = frozenset(
    {
        "numpy.dtype",
        *estimator_trusted_types(),  # each family's row lists what its models hold
        # Our own step that turns raw rows into model inputs (``core.model.raw_inputs``): plain lists only.
        "airflow_mlops.core.model.raw_inputs.ModelInputTransformer",
    }
)


class UntrustedModelError(RuntimeError):
    """The serialized model references types outside the trust policy."""


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


def log_training_run(
    registry: Registry,
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
    ``run_id`` (a parent run left open by ``Registry.start_parent_run``), and end the run:
    FINISHED, or FAILED when anything raised (as ``with mlflow.start_run()`` did).

    Everything goes through ``registry``'s client but ``mlflow.sklearn.log_model``, whose
    ``Model.log`` reads MLflow's process-wide tracking URI: it runs inside
    ``registry.process_uris``, given the run and its LoggedModel (created here, in the run's
    experiment) explicitly, so no active run or experiment is involved.
    """
    import mlflow.sklearn
    import sklearn
    import skops
    from mlflow.models import infer_signature
    from mlflow.tracking.context.registry import resolve_tags

    signature = infer_signature(input_example, model.predict(input_example))
    if run_id is None:
        experiment_id = registry.use_experiment(experiment)
        run_id = registry.create_run(experiment_id, run_name, tags)
    else:
        experiment_id = registry.resume_run(run_id, tags)
    with registry.ending(run_id):
        registry.log_batch(run_id, metrics=metrics, params={k: str(v)[:500] for k, v in params.items()})
        for path, content in (json_artifacts or {}).items():
            registry.client.log_dict(run_id, content, path)
        run_params = dict(registry.client.get_run(run_id).data.params)
        logged = registry.client.create_logged_model(
            experiment_id, name="model", source_run_id=run_id, tags=resolve_tags(), params=run_params
        )
        with registry.process_uris():
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                serialization_format="skops",
                skops_trusted_types=trusted_types_for(model),
                signature=signature,
                input_example=input_example.head(5),
                pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"skops=={skops.__version__}"],
                run_id=run_id,
                model_id=logged.model_id,
            )
    return LoggedModel(run_id=run_id, model_uri=info.model_uri, experiment_id=experiment_id)


def load_model(registry: Registry, model_uri: str, raw_inputs: bool = False) -> Any:
    """Download an MLflow sklearn model from ``registry`` and load it with skops under our trust policy.

    The registered model takes raw rows (``core.model.raw_inputs``); unless ``raw_inputs``,
    the trained Pipeline inside it is returned, which takes ``training.feature_frame`` inputs.
    """
    from airflow_mlops.core.model.raw_inputs import unwrap

    with tempfile.TemporaryDirectory(prefix="airflow-mlops-model-") as tmp:
        local = registry.download(model_uri, tmp)
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
