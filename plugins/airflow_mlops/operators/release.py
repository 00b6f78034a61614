"""Release operators: register, gate, promote, roll back and deploy the champion through MLflow."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowSkipException

from airflow_mlops.operators.base import (
    MlopsBaseOperator,
    requested_by,
    run_option,
    skip_when_nothing_to_process,
    upstream_result,
)
from airflow_mlops.operators.lineage import Lineage
from airflow_mlops.operators.links import MlflowRunLink, ModelVersionLink, ValidationReportLink

_BASE = MlopsBaseOperator.template_fields

if TYPE_CHECKING:
    from airflow.sdk import Context, XComArg

    from airflow_mlops.core.contracts import (
        DatasetRef,
        Evaluation,
        GateResult,
        Package,
        PromotionRecord,
        Registered,
        SplitRefs,
        TrainingResult,
        ValidationResult,
    )


class RegisterModelOperator(MlopsBaseOperator):
    """Register the candidate as a new model version tagged with lineage, metrics and the
    sha256 of its artifacts.

    Safe to retry: a version already registered from the same training run (an attempt
    killed after MLflow created it) is reused and its tags set again, never a twin.

    Every result parameter takes the task's ``.output`` (an XComArg).

    :param training: the train task's result. (templated)
    :param evaluation: the evaluate task's result. (templated)
    :param dataset: the ingest task's result. (templated)
    :param split: the split task's result. (templated)
    :param package: the package task's result (ONNX export and parity), if any. (templated)
    :param validation: the validate task's result: its warnings are tagged on the version. (templated)
    """

    operator_extra_links = (ModelVersionLink(), MlflowRunLink(), ValidationReportLink())

    template_fields: Sequence[str] = (*_BASE, "training", "evaluation", "dataset", "split", "package", "validation")
    lineage_io = Lineage(
        inputs={"training": "training", "dataset": "dataset", "split": "split", "package": "package",
                "validation": "validation"},
        output="registered",
    )  # fmt: skip

    def __init__(
        self,
        *,
        training: TrainingResult | XComArg,
        evaluation: Evaluation | XComArg,
        dataset: DatasetRef | XComArg,
        split: SplitRefs | XComArg,
        package: Package | XComArg | None = None,
        validation: ValidationResult | XComArg | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.training = training
        self.evaluation = evaluation
        self.dataset = dataset
        self.split = split
        self.package = package
        self.validation = validation

    def execute(self, context: Context) -> Registered:
        from airflow_mlops.core.model.release import register_candidate

        training: TrainingResult = upstream_result(self.training, "training")
        registered = register_candidate(
            self.load_spec(),
            self.registry(),
            training,
            upstream_result(self.evaluation, "evaluation"),
            upstream_result(self.dataset, "dataset"),
            upstream_result(self.split, "split"),
            self.lineage(context),
            upstream_result(self.package, "package") if self.package is not None else None,
            upstream_result(self.validation, "validation") if self.validation is not None else None,
        )
        self.log.info("registered %s v%s from MLflow run %s", registered["name"], registered["version"],
                      training["run_id"])  # fmt: skip
        return registered


class PromotionGateOperator(MlopsBaseOperator):
    """Decide whether the registered candidate may become champion, and say why.

    Also writes the version's model card (its description in the MLflow registry). Every result
    parameter takes the task's ``.output`` (an XComArg).

    :param registered: the register task's result. (templated)
    :param evaluation: the evaluate task's result. (templated)
    :param package: the package task's result; with ``packaging.onnx: required`` a failed
        export or parity check fails the gate, and its latency, size and memory figures are held
        to ``promotion.requirements`` (a figure over a limit, or missing, fails it). (templated)
    :param validation: the validate task's result: its warnings are among the gate's reasons,
        and fail it with ``promotion.block_on_validation_warnings``. (templated)
    """

    operator_extra_links = (ModelVersionLink(),)

    template_fields: Sequence[str] = (*_BASE, "registered", "evaluation", "package", "validation")
    ui_color = "#fdfbe8"
    lineage_io = Lineage(inputs={"registered": "registered", "package": "package", "validation": "validation"},
                         output="gate")  # fmt: skip

    def __init__(
        self,
        *,
        registered: Registered | XComArg,
        evaluation: Evaluation | XComArg,
        package: Package | XComArg | None = None,
        validation: ValidationResult | XComArg | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.registered = registered
        self.evaluation = evaluation
        self.package = package
        self.validation = validation

    def execute(self, context: Context) -> GateResult:
        from airflow_mlops.core.model import outcome
        from airflow_mlops.core.model.release import gate_candidate

        decision = gate_candidate(
            self.load_spec(),
            self.registry(),
            upstream_result(self.registered, "registered"),
            upstream_result(self.evaluation, "evaluation"),
            upstream_result(self.package, "package") if self.package is not None else None,
            upstream_result(self.validation, "validation") if self.validation is not None else None,
        )
        verdict = "PASSED" if decision["promote"] else "FAILED"
        self.log.info(
            "gate %s for %s v%s: %s",
            verdict,
            decision["name"],
            decision["version"],
            "; ".join(decision["reasons"]),
        )
        if decision["promote"]:
            self.record_outcome(context, outcome.gate_passed(decision, self.task_id))
        else:  # the summary a person looks for first: the champion stays, and why
            kept = outcome.kept(decision, self.task_id)
            self.log.warning("%s", kept["note"])
            self.record_outcome(context, kept)
        return decision


class ReplayCandidateOperator(MlopsBaseOperator):
    """Replay the gated candidate on the rows the champion answered lately, and name it ``challenger``.

    With ``rollout.replay`` the candidate predicts the champion's recent prediction-log rows offline;
    the figures (agreement, score shift and PSI, both models' metrics on labeled rows) are logged on
    its MLflow run and tagged on the version, and a missed condition holds the promotion. With
    ``rollout.shadow`` a candidate that may still be promoted becomes the ``challenger`` alias, which
    the serving app scores in shadow. Its result is the gate's (``promote`` false when held): the
    promote step takes it in the gate's place. A gate that failed: skipped.

    Safe to retry: it reads the log, then sets the version's ``replay`` tag whole, logs the same
    figures again and sets the alias to the same version (``core.model.replay``).

    :param gate: the gate task's result (its ``.output``). (templated)
    """

    operator_extra_links = (ModelVersionLink(),)

    template_fields: Sequence[str] = (*_BASE, "gate")
    ui_color = "#fdfbe8"
    lineage_io = Lineage(inputs={"gate": "gate"}, output="gate")  # the candidate version in; its verdict out

    def __init__(self, *, gate: GateResult | XComArg, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = gate

    def execute(self, context: Context) -> GateResult:
        from airflow_mlops.core.model import outcome
        from airflow_mlops.core.model.replay import replay_and_challenge

        gate: GateResult = upstream_result(self.gate, "gate")
        if not gate["promote"]:
            raise AirflowSkipException(f"no replay of {gate['name']} v{gate['version']}: the gate failed")
        result = replay_and_challenge(self.load_spec(), self.registry(), gate)
        self.log.info("replay of %s v%s: %s", result["name"], result["version"], "; ".join(result["reasons"]))
        if not result["promote"]:
            kept = outcome.kept(result, self.task_id)
            self.log.warning("%s", kept["note"])
            self.record_outcome(context, kept)
        return result


class PromoteModelOperator(MlopsBaseOperator):
    """Move the ``champion`` alias to the gated version; skip (with reasons) if the gate failed.

    The version must load and match the digests recorded at registration before the alias
    moves. Its outlet Asset event (the new champion) tells serving and scoring to reload.

    Safe to retry or clear (see ``core.registry.promotion``): the move is recorded as pending before
    the alias moves, so a retry finishes a move its killed attempt left unrecorded; the run
    promotes at most once, so a retry after its own promotion returns that record, and a
    clear after a later move (a rollback) skips, saying so, and moves nothing.

    :param gate: the gate task's result (its ``.output``). (templated)
    :param split: the split task's result (its ``.output``); when given, the candidate is served in this task and
        queried with test-split rows before the alias moves (a failure keeps the champion). (templated)
    """

    operator_extra_links = (ModelVersionLink(),)

    template_fields: Sequence[str] = (*_BASE, "gate", "split")
    ui_color = "#d7f5d9"
    lineage_io = Lineage(inputs={"gate": "gate", "split": "split.test"}, output="promotion")

    def __init__(self, *, gate: GateResult | XComArg, split: SplitRefs | XComArg | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = gate
        self.split = split

    def execute(self, context: Context) -> PromotionRecord:
        from airflow_mlops.core.model import outcome
        from airflow_mlops.core.model.release import promote_candidate

        gate: GateResult = upstream_result(self.gate, "gate")
        if not gate["promote"]:
            raise AirflowSkipException(
                f"not promoting {gate['name']} v{gate['version']}: " + "; ".join(gate["reasons"])
            )
        split: SplitRefs | None = upstream_result(self.split, "split") if self.split else None
        from airflow_mlops.operators.run_triggers import run_requests

        reason = run_option(context, "reason") or run_requests(context).reason  # the form's, a message's, a change's
        with skip_when_nothing_to_process():  # this run promoted before and the champion moved since
            record = promote_candidate(
                self.registry(),
                gate,
                by=requested_by(context),  # the run, and who triggered it
                preflight=(lambda: self._preflight(gate, split)) if split else None,
                requested_because=str(reason)[:500] if reason else None,
            )
        promoted = outcome.promoted(record, gate, self.task_id)
        self.log.info("%s", promoted["note"])
        self.record_outcome(context, promoted)
        champion_event: dict[str, Any] = {"model": gate["name"], **record}  # JSON: the Asset event's metadata
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = champion_event
        self.log.info("champion of %s: v%s -> v%s", gate["name"], record["from_version"], record["to_version"])
        return record

    def _preflight(self, gate: GateResult, split: SplitRefs) -> None:
        """Serve the candidate in this task and query it before the alias moves (see serving.deploy)."""
        from airflow.sdk.exceptions import AirflowException

        from airflow_mlops.serving.deploy import DeployError, preflight

        registry = self.registry()
        try:
            report = preflight(self.load_spec(), registry, str(gate["version"]), split["test"]["uri"])
        except DeployError as exc:
            registry.tag_version(gate["name"], str(gate["version"]), {"deploy": f"preflight failed: {exc}"[:4000]})
            raise AirflowException(f"not promoting {gate['name']} v{gate['version']}: {exc}") from exc
        self.log.info("v%s answers through the serving app before promotion: %s", gate["version"], report)


class RollbackChampionOperator(MlopsBaseOperator):
    """Move ``champion`` back to the version the last move replaced (or to ``to_version``) and
    record why; a second rollback undoes the first.

    Refuses (the task fails, naming the version and why) a target that failed its gate, was
    never gated, or has no parity-checked ONNX graph, unless ``force=True``; a forced
    rollback is recorded as such in the promotion history. A target whose artifacts do not
    load or differ from their recorded digests is refused even with ``force``. Its outlet
    Asset event (the champion changed) tells serving and scoring to reload.

    Safe to retry: the rollback is recorded under this task's run and id, so a retry returns
    the rollback already made (finishing its record if the attempt died midway) instead of
    undoing it.

    :param reason: recorded in the promotion history. (templated)
    :param to_version: the version to restore; default: the one the last move replaced. (templated)
    :param force: restore a target that fails those checks anyway.
    """

    operator_extra_links = (ModelVersionLink(),)

    template_fields: Sequence[str] = (*_BASE, "reason", "to_version")
    ui_color = "#fde8e8"
    lineage_io = Lineage(output="promotion")

    def __init__(
        self, *, reason: str = "manual rollback", to_version: str | None = None, force: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.reason = reason
        self.to_version = to_version
        self.force = force

    def execute(self, context: Context) -> PromotionRecord:
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_mlops.core.registry.promotion import RollbackError, rollback

        spec = self.load_spec()
        request = f"{context['dag'].dag_id}/{context['run_id']}/{self.task_id}"  # a retry finds its rollback by it
        try:
            record = rollback(
                self.registry(),
                spec.registered_model_name,
                by=requested_by(context),
                reason=self.reason,
                to_version=str(self.to_version) if self.to_version else None,
                force=self.force,
                run=request,
            )
        except RollbackError as exc:  # a refusal is a decision, not a glitch: retrying cannot change it
            raise AirflowFailException(f"rollback refused: {exc}") from exc
        champion_event: dict[str, Any] = {"model": spec.registered_model_name, **record}  # JSON: event metadata
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = champion_event
        self.log.info("champion of %s rolled back: v%s -> v%s%s", spec.registered_model_name,
                      record["from_version"], record["to_version"],
                      f" (forced past: {record['forced_past']})" if record.get("forced") else "")  # fmt: skip
        return record


class DeployChampionOperator(MlopsBaseOperator):
    """Smoke-test the champion the promote task just set; roll the alias back if it fails.

    The promoted version is served by the serving app's own code in this task and queried
    with real test-split rows; with ``deployment.conn_id`` in the spec (an HTTP connection:
    host, port, password = bearer token) the running ``airflow-mlops serve`` must also swap
    to it and answer. A failure moves ``champion`` back to the version it replaced and
    fails this task with the reason (see ``airflow_mlops.serving.deploy``).

    Safe to retry or clear: it writes only the version's ``deploy`` tags (set whole) and, on
    failure, a rollback recorded like any move (a half-done one is finished first); a retry
    after that rollback finds the version no longer champion and fails without moving it.

    :param promotion: the promote task's result (its ``.output``: from/to versions). (templated)
    :param split: the split task's result (its ``.output``); its test split gives the rows. (templated)
    """

    operator_extra_links = (ModelVersionLink(),)

    template_fields: Sequence[str] = (*_BASE, "promotion", "split")
    ui_color = "#d7e9f5"
    lineage_io = Lineage(inputs={"promotion": "promotion", "split": "split.test"}, output="deploy")

    def __init__(self, *, promotion: PromotionRecord | XComArg, split: SplitRefs | XComArg, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.promotion = promotion
        self.split = split

    def _live_target(self, conn_id: str) -> tuple[str, str | None]:
        from urllib.parse import urlsplit, urlunsplit

        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
        scheme = conn.schema if conn.schema in ("http", "https") else "http"
        host = (conn.host or "127.0.0.1").rstrip("/")
        parts = urlsplit(host if "://" in host else f"{scheme}://{host}")
        netloc = f"{parts.netloc}:{conn.port}" if conn.port and not parts.port else parts.netloc
        url = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        return url, conn.password or None

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowException

        from airflow_mlops.serving.deploy import DeployError, deploy_or_rollback

        spec = self.load_spec()
        promotion: PromotionRecord = upstream_result(self.promotion, "promotion")
        split: SplitRefs = upstream_result(self.split, "split")
        url, token = self._live_target(spec.deployment.conn_id) if spec.deployment.conn_id else (None, None)
        try:
            report = deploy_or_rollback(
                spec,
                self.registry(),
                dict(promotion),  # serving.deploy reads it as a plain dict
                split["test"]["uri"],
                by=requested_by(context),
                live_url=url,
                token=token,
            )
        except DeployError as exc:
            raise AirflowException(str(exc)) from exc
        self.log.info("v%s answers through the serving app: %s", report["version"], report)
        return report
