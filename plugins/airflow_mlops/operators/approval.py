"""Human approval before promotion, with Airflow 3's human-in-the-loop ApprovalOperator.

Used by the training DAG when the spec sets ``promotion.require_approval``: after the
gate passed, a person approves or rejects the move in the Airflow UI ("Required
actions"); a rejection skips the promotion. When the gate failed there is nothing to
approve and the task skips itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowSkipException

if TYPE_CHECKING:
    import jinja2
    from airflow.sdk import Context, XComArg

    from airflow_mlops.core.contracts import GateResult

# ``task.gate``: the gate's result, rendered before the body (see ``template_fields``).
APPROVAL_BODY = """\
Candidate **{{ task.gate['name'] }}
v{{ task.gate['version'] }}** passed the gate.

- metric {{ task.gate['metric'] }}: candidate
  {{ task.gate['candidate'] }}, champion
  v{{ task.gate['champion_version'] }}:
  {{ task.gate['champion'] }}
- reasons: {{ task.gate['reasons'] | join('; ') }}

The model card is the version's description in the MLflow registry.
Approve to make it the champion; reject to keep the current one.
"""


class PromotionApprovalOperator(ApprovalOperator):
    """Ask a person to approve the promotion the gate allowed; skip when the gate refused it.

    :param gate: the gate task's result (its ``.output``): whether to ask at all, and what the
        request shows. (templated)
    :param gate_task_id: without ``gate``, the gate task whose result is pulled instead.
    """

    # The gate first: Airflow renders the fields in this order, and the subject and body show it.
    template_fields: Sequence[str] = ("gate", *ApprovalOperator.template_fields)

    def __init__(
        self, *, gate: GateResult | XComArg | None = None, gate_task_id: str = "model.gate", **kwargs: Any
    ) -> None:
        kwargs.setdefault("subject", "Promote the new model to champion?")
        kwargs.setdefault("body", APPROVAL_BODY)
        super().__init__(**kwargs)
        self.gate = gate
        self.gate_task_id = gate_task_id

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        if self.gate is None:  # no XComArg given: the result of the gate task named by id
            self.gate = context["ti"].xcom_pull(task_ids=self.gate_task_id)
        super().render_template_fields(context, jinja_env)

    def execute(self, context: Context) -> Any:
        gate = self.gate if self.gate is not None else context["ti"].xcom_pull(task_ids=self.gate_task_id)
        if not isinstance(gate, dict) or not gate.get("promote"):
            reasons = "; ".join(gate.get("reasons", [])) if isinstance(gate, dict) else "no gate result"
            raise AirflowSkipException(f"nothing to approve: the gate did not pass ({reasons})")
        return super().execute(context)
