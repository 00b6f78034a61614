"""Spec -> training DAG: ingest > validate > split > plan > trial (mapped) > select >
[evaluate, package] > register > gate > (approve) > promote > deploy."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from airflow.sdk import DAG, TaskGroup

from airflow_mlops.factories.assets import pipeline_assets
from airflow_mlops.factories.common import dag_kwargs, load, resolve, schedule_for, xcom
from airflow_mlops.operators.data import IngestLabeledDataOperator, SplitDataOperator, ValidateDataOperator
from airflow_mlops.operators.model import (
    CloseTrainingRunOperator,
    EvaluateModelOperator,
    PackageModelOperator,
    PlanTrialsOperator,
    RunTrialOperator,
    SelectModelOperator,
)
from airflow_mlops.operators.release import (
    DeployChampionOperator,
    PromoteModelOperator,
    PromotionGateOperator,
    RegisterModelOperator,
)


def build_training_dag(spec_path: str | Path, mlflow_conn_id: str = "mlflow_default") -> DAG:
    """The training DAG of one spec, scheduled by its cron, by data arrival and by drift."""
    spec_path = resolve(spec_path)  # the file itself, else by name in $AIRFLOW_MLOPS_PIPELINES_DIR
    spec = load(spec_path)
    assets = pipeline_assets(spec.name, landing_rules=spec.data.landing)
    triggers = []
    if spec.schedule.on_data_arrival:
        triggers.append(assets.landing_training)
    if spec.schedule.on_drift:
        triggers.append(assets.drift)
    common = {"spec_path": str(spec_path), "mlflow_conn_id": mlflow_conn_id}

    kwargs = dag_kwargs(spec, "training", spec_path)
    # Every task is retried after an infrastructure fault (spec.retries): each is idempotent under
    # retry (its docstring says why); bad input fails at once, and the approval is not retried.
    kwargs["default_args"] = {
        **kwargs["default_args"],
        "retries": spec.retries.count,
        "retry_delay": dt.timedelta(seconds=spec.retries.delay_seconds),
    }
    with DAG(
        schedule=schedule_for(spec.schedule.cron, spec.schedule.timezone, triggers),
        max_active_runs=1,  # one champion decision at a time
        **kwargs,
    ) as dag:
        with TaskGroup("data", tooltip="ingest, validate (Great Expectations), split"):
            ingest = IngestLabeledDataOperator(task_id="ingest", **common)
            validate = ValidateDataOperator(task_id="validate", dataset=xcom("data.ingest"), **common)
            split = SplitDataOperator(task_id="split", dataset=xcom("data.ingest"), **common)
            ingest >> validate >> split
        with TaskGroup("model", tooltip="plan trials, run them (mapped), select, evaluate, register, gate, promote"):
            plan = PlanTrialsOperator(task_id="plan", dataset=xcom("data.ingest"), split=xcom("data.split"), **common)
            # One mapped task per trial (candidate x search point), each an MLflow child run.
            trials = RunTrialOperator.partial(
                task_id="trial",
                split=xcom("data.split"),
                map_index_template="{{ task.trial['label'] }}",
                **common,
            ).expand(trial=plan.output)
            select = SelectModelOperator(
                task_id="select",
                results=trials.output,  # type: ignore[arg-type]
                dataset=xcom("data.ingest"),
                split=xcom("data.split"),
                **common,
            )
            evaluate = EvaluateModelOperator(
                task_id="evaluate",
                training=xcom("model.select"),
                test_uri="{{ ti.xcom_pull(task_ids='data.split')['test']['uri'] }}",
                **common,
            )
            package = PackageModelOperator(
                task_id="package",
                training=xcom("model.select"),
                test_uri="{{ ti.xcom_pull(task_ids='data.split')['test']['uri'] }}",
                **common,
            )
            register = RegisterModelOperator(
                task_id="register",
                training=xcom("model.select"),
                evaluation=xcom("model.evaluate"),
                dataset=xcom("data.ingest"),
                split=xcom("data.split"),
                package=xcom("model.package"),
                validation=xcom("data.validate"),  # its warnings: tagged, on the card, in the gate
                **common,
            )
            gate = PromotionGateOperator(
                task_id="gate",
                registered=xcom("model.register"),
                evaluation=xcom("model.evaluate"),
                package=xcom("model.package"),
                validation=xcom("data.validate"),
                **common,
            )
            promote = PromoteModelOperator(
                task_id="promote", gate=xcom("model.gate"), split=xcom("data.split"), outlets=[assets.champion],
                **common,
            )  # fmt: skip
            # The new champion answers real rows through the serving app, or the alias goes back.
            deploy = DeployChampionOperator(
                task_id="deploy", promotion=xcom("model.promote"), split=xcom("data.split"), **common
            )
            promote >> deploy
            # Whatever happens to the trials or the selection, the parent MLflow run is not left RUNNING.
            close = CloseTrainingRunOperator(task_id="close_run", trials=xcom("model.plan"), **common)
            select >> close
            select >> [evaluate, package] >> register >> gate
            if spec.promotion.require_approval:
                from airflow_mlops.operators.approval import PromotionApprovalOperator

                timeout = spec.promotion.approval_timeout_hours
                approve = PromotionApprovalOperator(
                    task_id="approve",
                    defaults="Reject" if timeout else None,  # an unanswered request rejects, never promotes
                    response_timeout=dt.timedelta(hours=timeout) if timeout else None,
                    retries=0,  # a human's answer: nothing to retry
                )
                gate >> approve >> promote
            else:
                gate >> promote
        split >> plan
    return dag
