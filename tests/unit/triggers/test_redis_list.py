"""The redis+list queue: found by Airflow's MessageQueueTrigger through provider_info's queues; malformed
messages never become events; the producer removes a message only for a stored event."""

from __future__ import annotations

import asyncio

import pytest
from airflow.triggers.base import BaseEventTrigger
from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome

from airflow_mlops.triggers.redis_list import RedisListProducer, RedisListTrigger

pytestmark = pytest.mark.unit


def test_message_queue_trigger_dispatches_the_scheme_to_our_trigger():
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    trigger = MessageQueueTrigger(scheme="redis+list", key="mlops:churn", redis_conn_id="redis_mlops")
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_mlops.triggers.redis_list.RedisListTrigger"
    assert kwargs == {"key": "mlops:churn", "redis_conn_id": "redis_mlops", "block_seconds": 5.0}
    assert RedisListTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert isinstance(trigger, BaseEventTrigger)  # what an AssetWatcher requires


def test_one_shared_stream_per_list_in_ack_mode():
    trigger = RedisListTrigger(key="k", redis_conn_id="r")
    assert trigger.shared_stream_key() == ("redis+list", "r", "k")
    producer = RedisListTrigger.create_shared_stream_producer(trigger.serialize()[1])
    assert isinstance(producer, RedisListProducer) and producer.processing == "k:processing"


def test_a_malformed_message_is_dropped_not_an_event():
    trigger = RedisListTrigger(key="k")
    assert trigger.event_of(b"not json") is None and trigger.event_of(b'{"reason": 3}') is None
    event = trigger.event_of(b'{"reason": "labels", "force_retrain": true}')
    assert event is not None
    assert event.payload == {"queue": "redis+list://k", "message": {"reason": "labels", "force_retrain": True}}


class FakePipeline:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name, *args))

    async def execute(self):
        self.calls.append(("execute",))


def test_advance_removes_stored_ones_dead_letters_rejects_and_requeues_the_rest():
    producer = RedisListProducer("k", "r", 1.0)
    pipe = FakePipeline()
    producer.client = type("Client", (), {"pipeline": lambda self, transaction: pipe})()
    asyncio.run(
        producer.advance(
            [
                AdvanceItem(b"ok", AdvanceOutcome(acked=1, failed=0)),
                AdvanceItem(b"bad", AdvanceOutcome(acked=0, failed=0, rejected=1)),
                AdvanceItem(b"lost", AdvanceOutcome(acked=0, failed=1)),
                AdvanceItem(b"nobody", AdvanceOutcome(acked=0, failed=0)),
            ]
        )
    )
    assert pipe.calls == [
        ("lrem", "k:processing", -1, b"ok"),
        ("lrem", "k:processing", -1, b"bad"), ("lpush", "k:dead", b"bad"), ("ltrim", "k:dead", 0, 999),
        ("lrem", "k:processing", -1, b"lost"), ("rpush", "k", b"lost"),
        ("lrem", "k:processing", -1, b"nobody"), ("rpush", "k", b"nobody"),
        ("execute",),
    ]  # fmt: skip
