"""The tracking side of a ``Registry`` (``core.registry.client``): experiments and runs.

Every call goes through the object's own ``MlflowClient``, never through MLflow's
process-wide tracking URI or active experiment (``mlflow.set_experiment``,
``mlflow.start_run``), so two registries in one process never mix. The few MLflow APIs that
read the process-wide URI whatever the client (model logging, registration from a
``models:/`` URI on a SQL store) run inside ``process_uris``: set for the call, under a lock,
and restored after. Light on purpose: mlflow only, imported inside the methods.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any

log = logging.getLogger(__name__)
# tqdm bars of artifact downloads fill task logs with carriage returns; nobody watches them.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

DATABASE_SCHEMES = ("sqlite:", "postgresql", "mysql", "mssql")
# Serialises the calls that need MLflow's process-wide URIs (``Tracking.process_uris``).
_PROCESS_URIS = threading.RLock()
_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def training_run_name(pipeline: str, when: dt.datetime | None, trigger: str) -> str:
    """The parent training run's name as people read it in MLflow's run list.

    ``"churn training 2026-12-01 21:40 (asset: data arrival)"``: the pipeline, when the Airflow
    run was due (UTC, to the minute) and what started it (``trigger``). Not unique (two runs in
    one minute share it): the run is found again by its ``airflow.dag_id``/``airflow.run_id``
    tags (``Tracking.start_parent_run``), never by name.
    """
    stamp = when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M") if when is not None else "(no date)"
    return f"{pipeline} training {stamp}" + (f" ({trigger})" if trigger else "")


class Tracking:
    """One MLflow tracking server (or database store): its experiments and runs.

    :param tracking_uri: ``http(s)://host``, or a database URI such as ``sqlite:///mlflow.db``.
        It never holds credentials: the hook puts those in MLflow's own variables.
    :param registry_uri: the model registry, when it is not the tracking server.
    """

    def __init__(self, tracking_uri: str, registry_uri: str | None = None) -> None:
        if not tracking_uri:
            raise ValueError(f"a {type(self).__name__} needs a tracking URI")
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.tracking_uri!r})"

    def __getstate__(self) -> dict[str, Any]:
        """Only the URIs: a copy (a spawned process, a deep copy) makes its own client."""
        return {"tracking_uri": self.tracking_uri, "registry_uri": self.registry_uri}

    @cached_property
    def client(self) -> Any:
        """This server's ``mlflow.MlflowClient``."""
        import mlflow

        return mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)

    @contextmanager
    def process_uris(self) -> Iterator[None]:
        """Point MLflow's process-wide tracking and registry URIs at this server for a block.

        For the MLflow APIs that read them whatever client is given (``Model.log`` behind
        ``mlflow.sklearn.log_model``, the SQL registry store's ``create_model_version`` from a
        ``models:/`` URI). A process-wide lock serialises such blocks, and the URIs (and their
        environment variables) are restored on exit, so nothing leaks past the block. MLflow
        calls of other threads made during the block without their own client would see this
        server: this package makes none.
        """
        import mlflow
        from mlflow.tracking._model_registry import utils as registry_utils
        from mlflow.tracking._tracking_service import utils as tracking_utils

        with _PROCESS_URIS:
            saved = (tracking_utils._tracking_uri, registry_utils._registry_uri)
            saved_variables = {name: os.environ.get(name) for name in _URI_VARIABLES}
            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.registry_uri)
            try:
                yield
            finally:
                tracking_utils.set_tracking_uri(saved[0])  # type: ignore[arg-type]  # None unsets it
                registry_utils._registry_uri = saved[1]
                for name, value in saved_variables.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value

    def use_experiment(self, name: str) -> str:
        """The id of experiment ``name``, created if needed.

        A tracking server decides where artifacts go. With a database URI (no server) MLflow
        would put them in ``./mlruns`` of whatever the working directory is, so new experiments
        get a location under the artifact root instead.
        """
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is None:
            location = None
            if self.tracking_uri.startswith(DATABASE_SCHEMES):
                from airflow_mlops import layout

                location = layout.join(layout.artifact_root(), "mlflow", name)
                if "://" not in location:
                    location = f"file://{os.path.abspath(location)}"
            try:
                return str(self.client.create_experiment(name, artifact_location=location))
            except MlflowException as exc:  # another task created it meanwhile
                found = self.client.get_experiment_by_name(name)
                if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS" or found is None:
                    raise
        if found.lifecycle_stage == "deleted":
            raise MlflowException(f"MLflow experiment '{name}' is deleted: restore it, or delete it for good")
        return str(found.experiment_id)

    def create_run(self, experiment_id: str, run_name: str, tags: dict[str, str]) -> str:
        """A new RUNNING run with ``tags`` and the context tags ``mlflow.start_run`` would add
        (user, source), without making it MLflow's active run; its id."""
        from mlflow.tracking.context.registry import resolve_tags

        resolved = resolve_tags({**tags, "mlflow.runName": run_name})
        return str(self.client.create_run(experiment_id, tags=resolved, run_name=run_name).info.run_id)

    def resume_run(self, run_id: str, tags: dict[str, str]) -> str:
        """Make an existing run RUNNING again (a retried step logs on it) and add ``tags``; its experiment id."""
        self.client.update_run(run_id, status="RUNNING")
        self.log_batch(run_id, tags=tags)
        return str(self.client.get_run(run_id).info.experiment_id)

    def log_batch(
        self,
        run_id: str,
        metrics: dict[str, float] | None = None,
        params: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        """Metrics (step 0, now), params and tags on ``run_id``, in MLflow's batches."""
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        metric_items = [Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()]
        param_items = [Param(k, str(v)) for k, v in (params or {}).items()]
        tag_items = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        for at in range(0, max(len(metric_items), len(param_items), len(tag_items)), 100):
            self.client.log_batch(
                run_id,
                metrics=metric_items[at : at + 100],
                params=param_items[at : at + 100],
                tags=tag_items[at : at + 100],
            )

    @contextmanager
    def ending(self, run_id: str) -> Iterator[str]:
        """End ``run_id`` FINISHED after the block, FAILED when it raises (as ``with mlflow.start_run()``)."""
        try:
            yield run_id
        except BaseException:
            self.client.set_terminated(run_id, "FAILED")
            raise
        self.client.set_terminated(run_id, "FINISHED")

    def start_parent_run(self, experiment: str, run_name: str, tags: dict[str, str]) -> tuple[str, str]:
        """Create the training run that trials nest under (left RUNNING); return (run_id, experiment_id).

        A retry of the same Airflow run (same ``airflow.dag_id`` and ``airflow.run_id`` tags)
        reuses the parent it opened before, instead of leaving it open beside a new one.
        """
        experiment_id = self.use_experiment(experiment)
        if tags.get("airflow.dag_id") and tags.get("airflow.run_id"):
            earlier = self.client.search_runs(
                [experiment_id],
                filter_string=(
                    f"tags.`airflow.dag_id` = '{tags['airflow.dag_id']}' and tags.`airflow.run_id` = "
                    f"'{tags['airflow.run_id']}' and tags.role = 'training' and attributes.status = 'RUNNING'"
                ),
                max_results=1,
            )
            if earlier:
                return earlier[0].info.run_id, experiment_id
        run = self.client.create_run(experiment_id, run_name=run_name, tags={**tags, "role": "training"})
        return run.info.run_id, experiment_id

    def close_run_if_open(self, run_id: str, status: str = "FAILED") -> bool:
        """End ``run_id`` with ``status`` if it is still RUNNING; True when it was.

        Its child runs still RUNNING (a trial whose process died between creating its run and
        ending it) end as KILLED first, whatever the parent's state: no run of a finished
        training stays RUNNING in MLflow.
        """
        parent = self.client.get_run(run_id)
        children = self.client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{run_id}' and attributes.status = 'RUNNING'",
        )
        for child in children:
            log.warning("trial run %s of %s was left RUNNING (its task died): marked KILLED", child.info.run_id, run_id)
            self.client.set_terminated(child.info.run_id, "KILLED")
        if parent.info.status != "RUNNING":
            return False
        self.client.set_terminated(run_id, status)
        return True

    def log_child_run(
        self,
        experiment_id: str,
        parent_run_id: str,
        run_name: str,
        params: dict[str, Any],
        metrics: dict[str, float],
        tags: dict[str, str],
    ) -> str:
        """One finished trial: a child run of ``parent_run_id`` (MLflow nests it in the UI)."""
        child_tags = {**tags, "mlflow.parentRunId": parent_run_id}
        run_id = self.client.create_run(experiment_id, run_name=run_name, tags=child_tags).info.run_id
        try:
            for key, value in params.items():
                self.client.log_param(run_id, key, str(value)[:500])
            for key, value in metrics.items():
                self.client.log_metric(run_id, key, value)
        except Exception:
            self.client.set_terminated(run_id, "FAILED")
            raise
        self.client.set_terminated(run_id, "FINISHED")
        return str(run_id)

    def find_cached_trial(self, experiment_id: str, cache_key: str) -> dict[str, Any] | None:
        """The newest finished trial run with ``cache_key`` (that fitted, not itself a cache hit)."""
        runs = self.client.search_runs(
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

    def finish_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status)
