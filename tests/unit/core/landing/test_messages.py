"""Retrain messages: the small schema, and every malformed kind refused with what is wrong."""

from __future__ import annotations

import json

import pytest

from airflow_mlops.core.landing.messages import MAX_MESSAGE_BYTES, MessageError, message_of_event, parse_message

pytestmark = pytest.mark.unit


def test_a_message_of_known_fields_is_kept_field_for_field():
    raw = json.dumps({"reason": "new labels", "force_retrain": True, "id": "m-1", "requested_by": "crm"}).encode()
    assert parse_message(raw) == {"reason": "new labels", "force_retrain": True, "id": "m-1", "requested_by": "crm"}
    assert parse_message("{}") == {} and parse_message('{"reason": null}') == {}


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"retrain please", "not JSON"),
        (b"\xff\xfe{}", "not JSON in UTF-8"),
        (b"[1, 2]", "a JSON list, not an object"),
        (b'"text"', "a JSON str, not an object"),
        (b'{"reason": 5}', "'reason' must be a str, not int"),
        (b'{"force_retrain": "yes"}', "'force_retrain' must be a bool, not str"),
        (b'{"force_retrain": 1}', "'force_retrain' must be a bool, not int"),
        (b'{"reason": "x", "drop_table": true}', "unknown fields ['drop_table']"),
        (json.dumps({"reason": "x" * 501}).encode(), "'reason' is longer than 500"),
        (json.dumps({"reason": "x" * MAX_MESSAGE_BYTES}).encode(), f"more than {MAX_MESSAGE_BYTES}"),
    ],
)
def test_a_malformed_message_is_refused_with_what_is_wrong(raw, problem):
    with pytest.raises(MessageError, match=r"^message") as caught:
        parse_message(raw)
    assert problem in str(caught.value)


def test_the_event_shapes_of_each_trigger_are_read():
    ours = {"queue": "redis+list://k", "message": {"reason": "r"}}
    pubsub = {"type": "message", "pattern": None, "channel": "c", "data": '{"reason": "r"}'}
    sqs = {"status": "success", "message_batch": [{"Body": '{"reason": "r"}', "MessageId": "1"}]}
    assert [message_of_event(p) for p in (ours, pubsub, sqs, {"value": '{"reason": "r"}'})] == [{"reason": "r"}] * 4
    for bad in ("text", {"other": 1}, {"type": "message", "data": "not json"}, {"message": {"reason": 1}}):
        with pytest.raises(MessageError):
            message_of_event(bad)
