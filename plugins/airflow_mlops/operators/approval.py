"""Human approval before promotion, with Airflow 3's human-in-the-loop ApprovalOperator.

Used by the training DAG when the spec sets ``promotion.require_approval``: after the
gate passed, a person approves or rejects the move in the Airflow UI ("Required
actions"); a rejection skips the promotion. When the gate failed there is nothing to
approve and the task skips itself.

The request shows the evidence (``core.model.evidence``): candidate and champion on every
test metric of the same rows, the gate's reasons and thresholds, the ONNX parity, the drift
that triggered the run, the deadline and the MLflow pages of both versions. The form has an
optional comment. The answer (decision, who, when, comment) is written to the candidate's
``approval`` version tag before the promotion may run, for a rejection and a timeout too: the
promote task refuses a rejected version and records an approved one in the approver's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param
from airflow.sdk.definitions.param import ParamsDict
from airflow.sdk.exceptions import AirflowSkipException

from airflow_mlops.operators.lineage import Lineage, LineageMixin

if TYPE_CHECKING:
    from airflow.sdk import Context, XComArg

    from airflow_mlops.core.contracts import GateResult
    from airflow_mlops.core.model.evidence import DriftTrigger

COMMENT = "comment"
DEFAULT_SUBJECT = "Promote the new model to champion?"


def _comment_param() -> Param:
    return Param(
        "",
        type=["null", "string"],
        maxLength=2000,
        title="Comment",
        description="Optional: why you approve or reject. Recorded with your answer on the model version in MLflow.",
        source="task",  # HITL keeps only the task's own params in its form
    )


def _with_comment(params: Any) -> ParamsDict:
    """The task's params with the comment field added. Airflow hands a task its DAG's params as
    ``params`` (the training DAG's trigger form): a default that is only set when ``params`` is
    missing would drop the field whenever the DAG has params. HITL shows only ``source="task"`` ones."""
    merged = params if isinstance(params, ParamsDict) else ParamsDict(params or {})
    if COMMENT not in merged:
        merged[COMMENT] = _comment_param()
    return merged


def _isoformat(value: Any) -> str:
    import datetime as dt

    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="seconds")
    return str(value) if value else dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def drift_triggers(context: Context) -> list[DriftTrigger]:
    """The drift Asset events (``mlops.<pipeline>.drift``, see ``factories.assets``) that triggered this run."""
    events = context.get("triggering_asset_events") or {}
    found: list[DriftTrigger] = []
    for asset in events:
        name = str(getattr(asset, "name", "") or "")
        if not (name.startswith("mlops.") and name.endswith(".drift")):
            continue
        for event in events[asset]:
            source = getattr(event, "source_dag_id", None)
            found.append({
                "asset": name,
                "at": _isoformat(getattr(event, "timestamp", None)) if getattr(event, "timestamp", None) else None,
                "source": f"{source}/{getattr(event, 'source_run_id', None)}" if source else None,
                "extra": dict(getattr(event, "extra", None) or {}),  # type: ignore[typeddict-item]
            })  # fmt: skip
    return found


class PromotionApprovalOperator(LineageMixin, ApprovalOperator):
    """Ask a person to approve the promotion the gate allowed; skip when the gate refused it.

    :param gate: the gate task's result (its ``.output``): whether to ask at all, and what the
        request shows. (templated)
    :param gate_task_id: without ``gate``, the gate task whose result is pulled instead.
    :param mlflow_conn_id: the MLflow connection: the answer is written to the candidate's
        version there, and its tracking URI (without credentials) gives the links to the model cards.
    :param body: replaces the evidence the request shows by default. (templated)
    """

    # The gate first: Airflow renders the fields in this order.
    template_fields: Sequence[str] = ("gate", *ApprovalOperator.template_fields)
    lineage_io = Lineage(inputs={"gate": "gate"})  # the model version asked about

    def __init__(
        self,
        *,
        gate: GateResult | XComArg | None = None,
        gate_task_id: str = "model.gate",
        mlflow_conn_id: str = "mlflow_default",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("subject", DEFAULT_SUBJECT)
        kwargs["params"] = _with_comment(kwargs.get("params"))
        super().__init__(**kwargs)
        self.gate = gate
        self.gate_task_id = gate_task_id
        self.mlflow_conn_id = mlflow_conn_id

    def _gate(self, context: Context) -> Any:
        return self.gate if self.gate is not None else context["ti"].xcom_pull(task_ids=self.gate_task_id)

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        if self.gate is None:  # no XComArg given: the result of the gate task named by id
            self.gate = context["ti"].xcom_pull(task_ids=self.gate_task_id)
        super().render_template_fields(context, jinja_env)

    def _tracking_uri(self) -> str | None:
        """The MLflow tracking URI of the connection, for links only: a missing connection means no links."""
        from airflow_mlops.hooks.mlflow import MlflowHook

        try:
            return MlflowHook(mlflow_conn_id=self.mlflow_conn_id).get_uri()
        except Exception as exc:  # the links are a convenience; the answer's write fails loudly later
            self.log.warning("no links to the model cards: connection %s: %s", self.mlflow_conn_id, exc)
            return None

    def evidence(self, context: Context, gate: GateResult) -> str:
        """The request's Markdown body (``core.model.evidence.approval_request``)."""
        import datetime as dt

        from airflow_mlops.core.model.evidence import approval_request, version_page_url

        deadline = None
        if self.response_timeout:
            deadline = (dt.datetime.now(dt.UTC) + self.response_timeout).strftime("%Y-%m-%d %H:%M UTC")
        tracking_uri = self._tracking_uri()
        champion = gate.get("champion_version")
        return approval_request(
            gate,
            drift=drift_triggers(context),
            deadline=deadline,
            default_on_timeout=self.defaults[0] if self.defaults else None,
            model_url=version_page_url(tracking_uri, gate["name"], gate["version"]),
            champion_url=version_page_url(tracking_uri, gate["name"], champion) if champion else None,
        )

    def execute(self, context: Context) -> Any:
        gate = self._gate(context)
        if not isinstance(gate, dict) or not gate.get("promote"):
            reasons = "; ".join(gate.get("reasons", [])) if isinstance(gate, dict) else "no gate result"
            raise AirflowSkipException(f"nothing to approve: the gate did not pass ({reasons})")
        if self.subject == DEFAULT_SUBJECT:
            self.subject = f"Promote {gate['name']} v{gate['version']} to champion?"
        if not self.body:
            self.body = self.evidence(context, gate)  # type: ignore[arg-type]
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Write the answer to the candidate's ``approval`` tag, then approve or skip the promotion.

        Written first: when MLflow cannot be reached the task fails and nothing is promoted, so
        no promotion happens without its approval on record.
        """
        if "error" in event:  # no answer and no default: Airflow's timeout error
            return super().execute_complete(context=context, event=event)
        from airflow_mlops.core.model.release import approval_record, record_approval
        from airflow_mlops.hooks.mlflow import MlflowHook

        gate = self._gate(context)
        chosen = list(event.get("chosen_options") or [])
        decision = "approved" if chosen == [self.APPROVE] else "rejected"
        comment = (event.get("params_input") or {}).get(COMMENT)
        approval = approval_record(
            decision,
            event.get("responded_by_user"),
            _isoformat(event.get("responded_at")),
            comment if isinstance(comment, str) else None,
            run=f"{context['dag'].dag_id}/{context['run_id']}",
            timed_out=bool(event.get("timedout")),
        )
        record_approval(MlflowHook(mlflow_conn_id=self.mlflow_conn_id).get_conn(), gate["name"], gate["version"],
                        approval)  # fmt: skip
        self.log.info("%s v%s %s by %s%s", gate["name"], gate["version"], decision,
                      approval["by"] or "nobody (the deadline passed)",
                      f": {approval['comment']}" if approval["comment"] else "")  # fmt: skip
        return super().execute_complete(context=context, event=event)
