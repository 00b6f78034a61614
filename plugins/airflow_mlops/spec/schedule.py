"""`schedule`: when the training DAG runs: a cron, data arrival, drift, a message, a change of what is trained.

``schedule.on_message`` names a queue of Airflow's ``MessageQueueTrigger`` (the common.messaging
provider) by its scheme. ``QUEUE_SCHEMES`` is one row per scheme this package knows how to wire:
which trigger argument takes the queue's name and which the connection id. Another installed
provider's scheme is not refused at parse time's expense: it is a row away (docs/spec.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator, model_validator

from airflow_mlops.spec.base import Strict


@dataclass(frozen=True)
class QueueScheme:
    """How one scheme's trigger takes a queue: the argument names, and whether a list is wanted."""

    queue_argument: str
    conn_argument: str
    default_conn_id: str
    queue_as_list: bool
    provider: str  # the distribution that brings the scheme's MessageQueueProvider
    delivery: str  # what the queue guarantees, in words (docs/concepts.md says more)


QUEUE_SCHEMES: dict[str, QueueScheme] = {
    "redis+list": QueueScheme(
        "key", "redis_conn_id", "redis_default", False, "airflow-mlops",
        "at least once: a message leaves the list only after its Asset event is stored",
    ),
    "redis+pubsub": QueueScheme(
        "channels", "redis_conn_id", "redis_default", True, "apache-airflow-providers-redis",
        "at most once: a message published while no triggerer listens is lost",
    ),
    "sqs": QueueScheme(
        "sqs_queue", "aws_conn_id", "aws_default", False, "apache-airflow-providers-amazon",
        "at least once: SQS deletes a message once received (delete_message_on_reception)",
    ),
    "kafka": QueueScheme(
        "topics", "kafka_config_id", "kafka_default", True, "apache-airflow-providers-apache-kafka",
        "at least once per consumer group (offsets committed after the trigger took a message)",
    ),
}  # fmt: skip

OptionValue = str | int | float | bool | list[str]


class MessageQueueSpec(Strict):
    """A queue whose messages start a training run (an AssetWatcher with Airflow's MessageQueueTrigger)."""

    scheme: str = Field(description="The queue's kind: " + ", ".join(QUEUE_SCHEMES) + ".")
    queue: str = Field(
        min_length=1,
        max_length=1000,
        description="The list key (redis+list), channel (redis+pubsub), queue URL (sqs) or topic (kafka).",
    )
    conn_id: str | None = Field(default=None, description="The Airflow connection (default: the scheme's own).")
    options: dict[str, OptionValue] = Field(
        default_factory=dict, description="More arguments of the scheme's trigger, as they are (e.g. poll_interval)."
    )

    @field_validator("scheme")
    @classmethod
    def _scheme_is_known(cls, value: str) -> str:
        if value not in QUEUE_SCHEMES:
            raise ValueError(f"unknown queue scheme '{value}'; use one of {sorted(QUEUE_SCHEMES)}")
        return value

    @model_validator(mode="after")
    def _options_do_not_repeat(self) -> MessageQueueSpec:
        row = QUEUE_SCHEMES[self.scheme]
        taken = {row.queue_argument, row.conn_argument, "scheme", "queue"} & set(self.options)
        if taken:
            raise ValueError(f"options {sorted(taken)} are set by queue/conn_id; remove them from options")
        return self

    @property
    def connection(self) -> str:
        return self.conn_id or QUEUE_SCHEMES[self.scheme].default_conn_id

    def trigger_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``MessageQueueTrigger`` for this queue (scheme included)."""
        row = QUEUE_SCHEMES[self.scheme]
        return {
            "scheme": self.scheme,
            row.queue_argument: [self.queue] if row.queue_as_list else self.queue,
            row.conn_argument: self.connection,
            **self.options,
        }


class ScheduleSpec(Strict):
    """When the training DAG runs: the calendar, data arrival, monitoring events, messages, changes."""

    cron: str | None = Field(default=None, description="Calendar retraining, a cron expression.")
    on_data_arrival: bool = True
    on_drift: bool = True
    on_message: MessageQueueSpec | None = Field(
        default=None, description="Retrain when a message arrives on this queue (its payload: docs/spec.md)."
    )
    on_code_change: bool = Field(
        default=True,
        description="Retrain once when the spec's training fingerprint differs from the champion's.",
    )
    code_change_poll_seconds: float = Field(
        default=60.0, ge=5.0, le=86_400.0, description="How often the code-change watcher asks MLflow."
    )
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _cron_is_valid(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from croniter import croniter  # light; shipped with Airflow

        if not croniter.is_valid(value):
            raise ValueError(f"'{value}' is not a valid cron expression")
        return value
