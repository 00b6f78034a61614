"""Model operators: plan and run trials, select and refit, train, evaluate and package a candidate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.operators.base import (
    MlopsBaseOperator,
    fail_without_retry_on_bad_input,
    run_option,
    skip_when_nothing_to_process,
    triggering_user,
    upstream_result,
)
from airflow_mlops.operators.links import MlflowRunLink
from airflow_mlops.operators.threads import capped_threads, thread_cap

if TYPE_CHECKING:
    from airflow.sdk import Context, XComArg

    from airflow_mlops.core.contracts import (
        DatasetRef,
        Evaluation,
        Package,
        SplitRefs,
        TrainingResult,
        Trial,
        TrialResult,
    )


_BASE = MlopsBaseOperator.template_fields
# What the training DAG's assets mean, by the end of their names (``factories.assets``).
_ASSET_MEANINGS = {".landing.training": "data arrival", ".drift": "drift", ".message": "message",
                   ".code_change": "code change"}  # fmt: skip


def force_retrain(context: Context) -> bool:
    """The run's ``force_retrain`` option (the trigger form's checkbox, or conf, or a retrain message's
    field; always for a code change): train even when a registered version already learned this
    data with this spec."""
    from airflow_mlops.operators.run_triggers import run_requests

    value = run_option(context, "force_retrain", False)
    if value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1", "yes")):
        return True
    return run_requests(context).force_retrain  # a message asked for it, or a code change (always trains)


def training_run_name(context: Context, pipeline: str) -> str:
    """The parent MLflow run's name: ``<pipeline> training <when> (<what started it>)``.

    What started it: ``asset: data arrival`` / ``asset: drift`` (the assets of
    ``factories.assets``, other assets by name), ``schedule``, ``manual by <user>``, ``backfill``;
    ``, force_retrain`` when forced.
    """
    from airflow_mlops.core.registry.runs import training_run_name as name

    dag_run = context.get("dag_run")
    run_type = str(getattr(getattr(dag_run, "run_type", None), "value", getattr(dag_run, "run_type", "")) or "")
    assets = [getattr(asset, "name", str(asset)) for asset in context.get("triggering_asset_events") or {}]
    if assets:
        meanings = [next((m for end, m in _ASSET_MEANINGS.items() if a.endswith(end)), a) for a in assets]
        trigger = "asset: " + ", ".join(dict.fromkeys(meanings))
    elif run_type == "scheduled":
        trigger = "schedule"
    elif run_type in ("manual", "operator_triggered"):
        user = triggering_user(context)
        trigger = f"manual by {user}" if user else "manual"
    else:
        trigger = run_type.replace("_", " ")
    if force_retrain(context):
        trigger += ", force_retrain"
    when = getattr(dag_run, "run_after", None) or getattr(dag_run, "logical_date", None)
    return name(pipeline, when, trigger)


class TrainModelOperator(MlopsBaseOperator):
    """Run every trial of the spec in this one task, pick the best, refit and log it to MLflow.

    The training DAG maps trials over tasks instead (``PlanTrialsOperator``,
    ``RunTrialOperator``, ``SelectModelOperator``); this operator suits a DAG
    that wants one task.

    :param dataset: the ingest task's result (its ``.output``). (templated)
    :param split: the split task's result (its ``.output``). (templated)
    """

    operator_extra_links = (MlflowRunLink(),)

    template_fields: Sequence[str] = (*_BASE, "dataset", "split")
    ui_color = "#e8fde9"
    caps_model_threads = True

    def __init__(self, *, dataset: DatasetRef | XComArg, split: SplitRefs | XComArg, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset
        self.split = split

    def execute(self, context: Context) -> TrainingResult:
        from airflow_mlops.core.model.stages import train_model

        spec = self.load_spec()
        with skip_when_nothing_to_process(), capped_threads(self, spec) as cap:
            result = train_model(
                spec,
                self.registry(),
                upstream_result(self.split, "split"),
                upstream_result(self.dataset, "dataset"),
                self.lineage(context),
                skip_if_already_trained=not force_retrain(context),
                threads=cap.threads,
                run_name=training_run_name(context, spec.name),
            )
        self.log.info("logged MLflow run %s, model %s", result["run_id"], result["model_uri"])
        return result


class PlanTrialsOperator(MlopsBaseOperator):
    """Open the parent MLflow run and return the trials (candidates x search space) to map over.

    Skips (and so does everything after it) when a registered version was already trained
    on this data with this spec, unless the run asks for ``force_retrain`` (the training DAG's
    Param, in its trigger form; or conf ``{"force_retrain": true}``). The parent run is named for
    people (``training_run_name``) and tagged with the Airflow run, its triggering user and reason.

    :param dataset: the ingest task's result (its ``.output``). (templated)
    :param split: the split task's result (its ``.output``). (templated)
    """

    operator_extra_links = (MlflowRunLink(),)

    template_fields: Sequence[str] = (*_BASE, "dataset", "split")
    ui_color = "#e8fde9"

    def __init__(self, *, dataset: DatasetRef | XComArg, split: SplitRefs | XComArg, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset
        self.split = split

    def execute(self, context: Context) -> list[Trial]:
        from airflow_mlops.core.model.stages import plan_trials

        spec = self.load_spec()
        with skip_when_nothing_to_process():
            trials = plan_trials(
                spec,
                self.registry(),
                upstream_result(self.dataset, "dataset"),
                upstream_result(self.split, "split"),
                self.lineage(context),
                skip_if_already_trained=not force_retrain(context),
                run_name=training_run_name(context, spec.name),
            )
        self.log.info("%d trial(s) under MLflow run %s: %s", len(trials), trials[0]["parent_run_id"],
                      [t["label"] for t in trials])  # fmt: skip
        return trials


class RunTrialOperator(MlopsBaseOperator):
    """Fit one trial on the train split, score it on the validation split, log an MLflow child run.

    Meant to be mapped: ``RunTrialOperator.partial(...).expand(trial=plan.output)``.

    :param trial: one item of the plan task's result (``.expand(trial=plan.output)``). (templated)
    :param split: the split task's result (its ``.output``). (templated)
    """

    operator_extra_links = (MlflowRunLink(),)

    template_fields: Sequence[str] = (*_BASE, "trial", "split")
    ui_color = "#e8fde9"
    caps_model_threads = True

    def __init__(self, *, trial: Trial | XComArg, split: SplitRefs | XComArg, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.trial = trial
        self.split = split

    def execute(self, context: Context) -> TrialResult:
        from airflow_mlops.core.model.stages import run_trial

        spec = self.load_spec()
        trial: Trial = upstream_result(self.trial, "trial")
        if trial.get("trial_count"):
            width = int(trial["trial_count"])
        else:  # planned by a version before trial_count: the trials the spec expands into
            from airflow_mlops.core.model.tuning import expand_trials

            width = len(expand_trials(spec))
        cap = thread_cap(self, spec, width=width)
        self.log.info("BLAS/OpenMP threads for this trial: %s", cap.describe())
        with fail_without_retry_on_bad_input():  # e.g. params the estimator refuses: a retry cannot help
            result = run_trial(
                spec,
                self.registry(),
                trial,
                upstream_result(self.split, "split"),
                self.lineage(context),
                threads=cap.threads,
            )
        self.log.info("trial %s: %s (child run %s, %d thread(s))", result["label"], result["metrics"],
                      result["run_id"], cap.threads)  # fmt: skip
        return result


class SelectModelOperator(MlopsBaseOperator):
    """Pick the best trial by the spec's selection metric, refit it and log the model (skops).

    :param results: the mapped trial tasks' results (``trials.output``: a list). (templated)
    :param dataset: the ingest task's result (its ``.output``). (templated)
    :param split: the split task's result (its ``.output``). (templated)
    """

    operator_extra_links = (MlflowRunLink(),)

    template_fields: Sequence[str] = (*_BASE, "results", "dataset", "split")
    ui_color = "#e8fde9"
    caps_model_threads = True

    def __init__(
        self,
        *,
        results: Sequence[TrialResult] | XComArg,
        dataset: DatasetRef | XComArg,
        split: SplitRefs | XComArg,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.results = results
        self.dataset = dataset
        self.split = split

    def execute(self, context: Context) -> TrainingResult:
        from airflow_mlops.core.model.stages import select_and_refit

        results = self.results  # resolved: a (lazy) sequence of the mapped trial tasks' results
        if isinstance(results, str) or not isinstance(results, Sequence):
            raise TypeError(f"results must render to a list of trial results, got {results!r}")
        # One slice: iterating a lazy XCom sequence reads one item past its end, which Airflow logs
        # as an "XCom not found" ERROR line in a task that is fine.
        trial_results = list(results[:])
        spec = self.load_spec()
        with fail_without_retry_on_bad_input(), capped_threads(self, spec):
            result = select_and_refit(
                spec,
                self.registry(),
                trial_results,
                upstream_result(self.dataset, "dataset"),
                upstream_result(self.split, "split"),
                self.lineage(context),
            )
        self.log.info("best of %d trial(s): %s %s; model %s", result["trials"], result["winner"]["label"],
                      result["winner"]["metrics"], result["model_uri"])  # fmt: skip
        return result


class CloseTrainingRunOperator(MlopsBaseOperator):
    """Mark the parent MLflow run FAILED when the trials or the selection did not finish it.

    Runs whatever happened upstream (``trigger_rule="all_done"``): after a successful
    select the parent is already FINISHED and this does nothing.

    :param trials: the plan task's result (its ``.output``: the trials, each naming the parent run);
        None when the plan task pushed none (it skipped or failed). (templated)
    """

    operator_extra_links = (MlflowRunLink(),)

    template_fields: Sequence[str] = (*_BASE, "trials")
    ui_color = "#f0f0f0"

    def __init__(self, *, trials: Sequence[Trial] | XComArg | None, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.trials = trials

    def execute(self, context: Context) -> bool:
        trials = self.trials
        if not isinstance(trials, list) or not trials:
            self.log.info("no training run was opened (training skipped or planning failed)")
            return False
        parent = str(trials[0]["parent_run_id"])
        closed = self.registry().close_run_if_open(parent, "FAILED")
        self.log.info("training run %s %s", parent, "marked FAILED" if closed else "already ended")
        return closed


class _CandidateOnTestSplitOperator(MlopsBaseOperator):
    """Shared parameters of the stages that judge the selected candidate on the test split.

    :param training: the select task's result (its ``.output``). (templated)
    :param split: the split task's result (its ``.output``): its test part is judged on. (templated)
    :param test_uri: URI of the test split, instead of ``split``. (templated)
    """

    operator_extra_links = (MlflowRunLink(),)

    template_fields: Sequence[str] = (*_BASE, "training", "split", "test_uri")
    caps_model_threads = True

    def __init__(
        self,
        *,
        training: TrainingResult | XComArg,
        split: SplitRefs | XComArg | None = None,
        test_uri: str | None = None,
        **kwargs: Any,
    ) -> None:
        if (split is None) == (test_uri is None):
            raise ValueError("give the test split as split= (the split task's .output) or test_uri=, not both")
        super().__init__(**kwargs)
        self.training = training
        self.split = split
        self.test_uri = test_uri

    def test_split_uri(self) -> str:
        """The test split's URI, at task time."""
        if self.split is None:  # then test_uri was given
            return str(self.test_uri)
        return upstream_result(self.split, "split")["test"]["uri"]


class EvaluateModelOperator(_CandidateOnTestSplitOperator):
    """Evaluate the candidate and the current champion on the same hold-out test split.

    :param training: the select task's result (its ``.output``). (templated)
    :param split: the split task's result (its ``.output``), or ``test_uri``: URI of the test split. (templated)
    """

    def execute(self, context: Context) -> Evaluation:
        from airflow_mlops.core.model.stages import evaluate_candidate

        spec = self.load_spec()
        with fail_without_retry_on_bad_input(), capped_threads(self, spec):
            result = evaluate_candidate(
                spec, self.registry(), upstream_result(self.training, "training"), self.test_split_uri()
            )
        self.log.info(
            "candidate %s; champion v%s %s",
            result["candidate"],
            result["champion_version"],
            result["champion"],
        )
        return result


class PackageModelOperator(_CandidateOnTestSplitOperator):
    """Export the candidate to ONNX and check prediction parity with scikit-learn on the test split.

    Logs ``onnx/model.onnx`` and ``onnx/parity.json`` on the candidate's run, and the latency, size
    and memory figures as ``nfr_*`` metrics (the result's ``nfr``; ``promotion.requirements`` gates
    on them). A model without an ONNX form does not fail this task: the result says why and the
    gate decides. Safe to retry: the same artifacts and metrics are logged again on the same run.

    :param training: the select task's result (its ``.output``). (templated)
    :param split: the split task's result (its ``.output``), or ``test_uri``: URI of the test split. (templated)
    """

    def execute(self, context: Context) -> Package:
        from airflow_mlops.core.model.stages import package_candidate

        spec = self.load_spec()
        with fail_without_retry_on_bad_input(), capped_threads(self, spec):
            result = package_candidate(
                spec, self.registry(), upstream_result(self.training, "training"), self.test_split_uri()
            )
        if result["error"]:
            self.log.warning("no ONNX package: %s", result["error"])
        elif result["parity"]:
            self.log.info("ONNX %s; parity %s", result["onnx_uri"], result["parity"])
        self.log.info("latency, size and memory: %s", result.get("nfr"))
        return result
