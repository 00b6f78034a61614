"""Human approval before promotion, with Airflow 3's human-in-the-loop ApprovalOperator.

Used by the training DAG when the spec sets ``promotion.require_approval``: after the
gate passed, a person approves or rejects the move in the Airflow UI ("Required
actions"); a rejection skips the promotion. When the gate failed there is nothing to
approve and the task skips itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowSkipException

if TYPE_CHECKING:
    from airflow.sdk import Context

APPROVAL_BODY = """\
Candidate **{{ ti.xcom_pull(task_ids='model.gate')['name'] }}
v{{ ti.xcom_pull(task_ids='model.gate')['version'] }}** passed the gate.

- metric {{ ti.xcom_pull(task_ids='model.gate')['metric'] }}: candidate
  {{ ti.xcom_pull(task_ids='model.gate')['candidate'] }}, champion
  v{{ ti.xcom_pull(task_ids='model.gate')['champion_version'] }}:
  {{ ti.xcom_pull(task_ids='model.gate')['champion'] }}
- reasons: {{ ti.xcom_pull(task_ids='model.gate')['reasons'] | join('; ') }}

The model card is the version's description in the MLflow registry.
Approve to make it the champion; reject to keep the current one.
"""


class PromotionApprovalOperator(ApprovalOperator):
    """Ask a person to approve the promotion the gate allowed; skip when the gate refused it.

    :param gate_task_id: the gate task whose result decides whether to ask at all.
    """

    def __init__(self, *, gate_task_id: str = "model.gate", **kwargs: Any) -> None:
        kwargs.setdefault("subject", "Promote the new model to champion?")
        kwargs.setdefault("body", APPROVAL_BODY)
        super().__init__(**kwargs)
        self.gate_task_id = gate_task_id

    def execute(self, context: Context) -> Any:
        gate = context["ti"].xcom_pull(task_ids=self.gate_task_id)
        if not isinstance(gate, dict) or not gate.get("promote"):
            reasons = "; ".join(gate.get("reasons", [])) if isinstance(gate, dict) else "no gate result"
            raise AirflowSkipException(f"nothing to approve: the gate did not pass ({reasons})")
        return super().execute(context)
