"""A retrain message's payload, checked (light: the triggerer runs it; stdlib only).

A producer sends a JSON object of at most ``MAX_MESSAGE_BYTES`` (UTF-8), every field optional::

    {"reason": "new labels from the CRM", "force_retrain": true, "id": "crm-2026-12-02", "requested_by": "crm"}

``reason`` is tagged on the training run and the version and written in the promotion record;
``force_retrain`` trains even when a version already learned this data with this spec; ``id`` and
``requested_by`` are tagged too (``message_id``, ``message_by``). Anything else (not JSON, not an
object, too large, a field unknown or of the wrong type) is a ``MessageError``: the Redis-list
trigger logs and drops it (dead-letter list), a run triggered by nothing else skips.

The same check runs twice: in the triggerer (``triggers.redis_list``) and in the run
(``operators.run_triggers``), since an Asset event can also come from Airflow's own pub/sub trigger
(which checks nothing) or from anyone allowed to post events through the REST API.
"""

from __future__ import annotations

import json
from typing import Any, TypedDict

MAX_MESSAGE_BYTES = 4096
# field -> (type, longest text)
FIELDS: dict[str, tuple[type, int]] = {
    "reason": (str, 500),
    "force_retrain": (bool, 0),
    "id": (str, 200),
    "requested_by": (str, 200),
}


class RetrainMessage(TypedDict, total=False):
    """A checked message: only the known fields, of their types."""

    reason: str
    force_retrain: bool
    id: str
    requested_by: str


class MessageError(ValueError):
    """A message that cannot be used: what is wrong with it, without its content."""


def parse_message(raw: bytes | str | dict[str, Any]) -> RetrainMessage:
    """The message in ``raw`` (bytes or text of JSON, or an already decoded object), checked."""
    if isinstance(raw, dict):
        value: Any = raw
        size = len(json.dumps(raw, default=str).encode())
    else:
        data = raw if isinstance(raw, bytes) else str(raw).encode("utf-8", errors="replace")
        size = len(data)
        if size > MAX_MESSAGE_BYTES:
            raise MessageError(f"message of {size} bytes, more than {MAX_MESSAGE_BYTES}")
        try:
            value = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise MessageError(f"message is not JSON in UTF-8 ({type(exc).__name__})") from None
    if size > MAX_MESSAGE_BYTES:
        raise MessageError(f"message of {size} bytes, more than {MAX_MESSAGE_BYTES}")
    if not isinstance(value, dict):
        raise MessageError(f"message is a JSON {type(value).__name__}, not an object")
    unknown = sorted(str(k) for k in value if k not in FIELDS)
    if unknown:
        raise MessageError(f"message has unknown fields {unknown[:5]}; known: {sorted(FIELDS)}")
    checked: dict[str, Any] = {}
    for name, field in value.items():
        kind, longest = FIELDS[name]
        if field is None:
            continue
        if type(field) is not kind:  # bool is an int: compared exactly
            raise MessageError(f"message field '{name}' must be a {kind.__name__}, not {type(field).__name__}")
        if isinstance(field, str) and len(field) > longest:
            raise MessageError(f"message field '{name}' is longer than {longest} characters")
        checked[name] = field
    return RetrainMessage(**checked)  # type: ignore[typeddict-item]


def message_of_event(payload: Any) -> RetrainMessage:
    """The message an Asset event carries (``event.extra["payload"]``), checked.

    Shapes: ``{"message": {...}}`` (``triggers.redis_list``), ``{"type": "message", "data": "..."}``
    (Airflow's Redis pub/sub trigger), ``{"status": "success", "message_batch": [{"Body": "..."}]}``
    (Airflow's SQS trigger: the first message of the batch; set ``options.max_messages: 1``),
    ``{"value": "..."}`` (a Kafka apply_function that returns the record's value).
    """
    if not isinstance(payload, dict):
        raise MessageError(f"event payload is a {type(payload).__name__}, not an object")
    if "message" in payload:
        return parse_message(payload["message"] if isinstance(payload["message"], dict | str) else repr(payload))
    if payload.get("type") == "message" and "data" in payload:
        return parse_message(payload["data"] if isinstance(payload["data"], str | bytes) else repr(payload["data"]))
    messages = payload.get("message_batch")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict) and "Body" in messages[0]:
        return parse_message(str(messages[0]["Body"]))
    if isinstance(payload.get("value"), str):
        return parse_message(payload["value"])
    raise MessageError(f"event payload of an unknown shape (keys {sorted(map(str, payload))[:5]})")
