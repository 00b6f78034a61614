"""Spec -> training DAG: ingest > validate > split > plan > trial (mapped) > select >
[evaluate, package] > register > gate > (replay) > (approve) > promote > deploy."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from airflow.sdk import DAG, Param, TaskGroup

from airflow_mlops.factories.assets import code_change_asset, message_asset, pipeline_assets
from airflow_mlops.factories.common import dag_kwargs, drop_implied_edges, load, resolve, schedule_for
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
    ReplayCandidateOperator,
)


def training_params() -> dict[str, Param]:
    """The fields of the training DAG's trigger form (a scheduled or asset run takes the defaults).

    No data window (since/until): a run reads the files its landing claims delivered plus the
    newest ``data.window_batches`` lake batches (``core.data.lake_window``), and a SQL source its
    watermark; neither can honour an arbitrary date range, so the form does not offer one.
    """
    return {
        "force_retrain": Param(
            False,
            type="boolean",
            title="Force retrain",
            description=(
                "Train even when a registered version already learned this exact data with this spec "
                "(without it such a run skips: it would only produce that version's twin)."
            ),
        ),
        "reason": Param(
            None,
            type=["null", "string"],
            title="Reason",
            description=(
                "Why you start this run (optional): tagged on the MLflow training run and the model "
                "version, and written in the promotion record."
            ),
            maxLength=500,
        ),
    }


def build_training_dag(spec_path: str | Path, mlflow_conn_id: str = "mlflow_default") -> DAG:
    """The training DAG of one spec, scheduled by its cron, by data arrival, by drift, by a message
    (``schedule.on_message``) and by a change of what is trained (``schedule.on_code_change``).

    Its trigger form has ``force_retrain`` and ``reason`` (``training_params``). Each run ends
    with a note saying what it did (``PROMOTED v2 (+0.0101 roc_auc over v1)``, ``KEPT v1: ...``,
    ``FAILED at data.validate: ...``): the tasks record their outcome and the scheduler's listener
    writes the note (``notifiers.run_notes``; a DAG callback cannot: it has no database access).

    Long on purpose: the DAG's tasks in their run order, one operator each, wired by ``.output``.
    """
    spec_path = resolve(spec_path)  # the file itself, else by name in $AIRFLOW_MLOPS_PIPELINES_DIR
    spec = load(spec_path)
    assets = pipeline_assets(spec.name, landing_rules=spec.data.landing)
    triggers = []
    if spec.schedule.on_data_arrival:
        triggers.append(assets.landing_training)
    if spec.schedule.on_drift:
        triggers.append(assets.drift)
    triggers.extend(a for a in (message_asset(spec), code_change_asset(spec, mlflow_conn_id)) if a is not None)
    common = {"spec_path": str(spec_path), "mlflow_conn_id": mlflow_conn_id}

    schedule = schedule_for(spec.schedule.cron, spec.schedule.timezone, triggers)
    kwargs = dag_kwargs(spec, "training", spec_path, schedule=schedule)
    # Every task is retried after an infrastructure fault (spec.retries): each is idempotent under
    # retry (its docstring says why); bad input fails at once, and the approval is not retried.
    kwargs["default_args"] = {
        **kwargs["default_args"],
        "retries": spec.retries.count,
        "retry_delay": dt.timedelta(seconds=spec.retries.delay_seconds),
    }
    with DAG(
        max_active_runs=1,  # one champion decision at a time
        params=training_params(),
        **kwargs,
    ) as dag:
        # Results travel as XComArgs (``task.output``): resolved by Airflow at task time, each adds
        # the producer as an upstream; drop_implied_edges keeps only the edges drawn here.
        with TaskGroup("data", tooltip="ingest, validate (Great Expectations), split"):
            ingest = IngestLabeledDataOperator(task_id="ingest", **common)
            validate = ValidateDataOperator(task_id="validate", dataset=ingest.output, **common)
            split = SplitDataOperator(task_id="split", dataset=ingest.output, **common)
            ingest >> validate >> split
        with TaskGroup("model", tooltip="plan trials, run them (mapped), select, evaluate, register, gate, promote"):
            plan = PlanTrialsOperator(task_id="plan", dataset=ingest.output, split=split.output, **common)
            # One mapped task per trial (candidate x search point), each an MLflow child run.
            trials = RunTrialOperator.partial(
                task_id="trial",
                split=split.output,
                map_index_template="{{ task.trial['label'] }}",
                **common,
            ).expand(trial=plan.output)
            select = SelectModelOperator(
                task_id="select", results=trials.output, dataset=ingest.output, split=split.output, **common
            )
            evaluate = EvaluateModelOperator(task_id="evaluate", training=select.output, split=split.output, **common)
            package = PackageModelOperator(task_id="package", training=select.output, split=split.output, **common)
            register = RegisterModelOperator(
                task_id="register",
                training=select.output,
                evaluation=evaluate.output,
                dataset=ingest.output,
                split=split.output,
                package=package.output,
                validation=validate.output,  # its warnings: tagged, on the card, in the gate
                **common,
            )
            gate = PromotionGateOperator(
                task_id="gate",
                registered=register.output,
                evaluation=evaluate.output,
                package=package.output,
                validation=validate.output,
                **common,
            )
            verdict: PromotionGateOperator | ReplayCandidateOperator = gate
            rollout = spec.rollout
            if rollout.replay.enabled or rollout.shadow.enabled:
                # The candidate answers the champion's recent rows offline and/or becomes the challenger the
                # serving app shadows; its result (the gate's, held when the replay says so) is promote's gate.
                verdict = ReplayCandidateOperator(task_id="replay", gate=gate.output, **common)
                gate >> verdict
            promote = PromoteModelOperator(
                task_id="promote", gate=verdict.output, split=split.output, outlets=[assets.champion], **common
            )
            # The new champion answers real rows through the serving app, or the alias goes back.
            deploy = DeployChampionOperator(task_id="deploy", promotion=promote.output, split=split.output, **common)
            promote >> deploy
            # Whatever happens to the trials or the selection, the parent MLflow run is not left RUNNING.
            close = CloseTrainingRunOperator(task_id="close_run", trials=plan.output, **common)
            select >> close
            select >> [evaluate, package] >> register >> gate
            if spec.promotion.require_approval:
                from airflow_mlops.operators.approval import PromotionApprovalOperator

                timeout = spec.promotion.approval_timeout_hours
                approve = PromotionApprovalOperator(
                    task_id="approve",
                    gate=verdict.output,
                    mlflow_conn_id=mlflow_conn_id,  # the answer is written to the version there
                    defaults="Reject" if timeout else None,  # an unanswered request rejects, never promotes
                    response_timeout=dt.timedelta(hours=timeout) if timeout else None,
                    retries=0,  # a human's answer: nothing to retry
                )
                verdict >> approve >> promote
            else:
                verdict >> promote
        split >> plan
    drop_implied_edges(dag)
    return dag
