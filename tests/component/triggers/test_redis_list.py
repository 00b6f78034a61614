"""The redis+list trigger on a real Redis (database 11, flushed before and after) under Airflow's own
shared-stream manager in ack mode, as the triggerer runs it: a message leaves the list only once its
event was confirmed stored; a malformed one goes to the dead-letter list; one taken by a triggerer
that died before its event was stored is delivered again by the next poll."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid

import pytest
import redis
from airflow.triggers.shared_stream import SharedStreamManager

from airflow_mlops.triggers.redis_list import RedisListTrigger

pytestmark = pytest.mark.component

DB = 11  # this test's Redis database number; only it is flushed
CONN_ID = "redis_mlops_component"


@pytest.fixture
def queue(monkeypatch):
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(
        {"conn_type": "redis", "host": "127.0.0.1", "port": 6379, "extra": {"db": DB}}))  # fmt: skip
    client = redis.Redis(host="127.0.0.1", port=6379, db=DB)
    client.flushdb()
    yield client, f"mlops:test:{uuid.uuid4().hex[:8]}"
    client.flushdb()
    client.close()
    os.environ.pop(f"AIRFLOW_CONN_{CONN_ID.upper()}", None)


async def _events(trigger: RedisListTrigger, wanted: int, *, confirm: bool, within: float = 10.0) -> list:
    """Run ``trigger`` the way the triggerer does (shared stream, ack mode) until ``wanted`` events;
    ``confirm``: report each event stored (as the supervisor does once it is in the database)."""
    manager = SharedStreamManager(ack_timeout=30.0)
    key = trigger.shared_stream_key()
    found: list = []

    async def consume() -> None:
        stream = trigger.filter_shared_stream(manager.subscribe(trigger_id=1, trigger=trigger, key=key))
        async for event in stream:  # never returns: asking for the next raw event resolves this one
            seq = manager.bind_pending_event(trigger_id=1, key=key)
            found.append(event)
            if confirm and seq is not None:
                manager.confirm_persisted([seq])

    task = asyncio.ensure_future(consume())
    deadline = asyncio.get_running_loop().time() + within
    while len(found) < wanted and asyncio.get_running_loop().time() < deadline and not task.done():
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the advance of the last one
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await manager.stop_all()
    return found


def test_messages_become_events_and_leave_the_list_only_once_stored(queue):
    client, key = queue
    client.lpush(key, json.dumps({"reason": "first", "id": "m1"}), b"not json", json.dumps({"reason": "second"}))
    trigger = RedisListTrigger(key=key, redis_conn_id=CONN_ID, block_seconds=0.2)
    events = asyncio.run(_events(trigger, 2, confirm=True))
    assert [e.payload["message"] for e in events] == [{"reason": "first", "id": "m1"}, {"reason": "second"}]
    assert client.llen(key) == 0 and client.llen(f"{key}:processing") == 0
    assert client.lrange(f"{key}:dead", 0, -1) == [b"not json"]  # dropped, kept for a person to look at


def test_a_message_whose_event_was_never_stored_is_delivered_again_after_a_restart(queue):
    client, key = queue
    client.lpush(key, json.dumps({"reason": "survives", "force_retrain": True}))
    trigger = RedisListTrigger(key=key, redis_conn_id=CONN_ID, block_seconds=0.2)
    # The triggerer dies after the trigger yielded, before the event reached the database.
    lost = asyncio.run(_events(trigger, 1, confirm=False))
    assert [e.payload["message"]["reason"] for e in lost] == ["survives"]
    assert client.llen(f"{key}:processing") == 1  # parked, not removed
    # The next triggerer's poll starts with what was parked.
    again = asyncio.run(_events(RedisListTrigger(key=key, redis_conn_id=CONN_ID, block_seconds=0.2), 1, confirm=True))
    assert [e.payload["message"] for e in again] == [{"reason": "survives", "force_retrain": True}]
    assert client.llen(key) == 0 and client.llen(f"{key}:processing") == 0


def test_run_without_the_shared_stream_takes_messages_too(queue):
    client, key = queue
    client.lpush(key, json.dumps({"reason": "plain"}))
    trigger = RedisListTrigger(key=key, redis_conn_id=CONN_ID, block_seconds=0.2)

    async def first():
        async for event in trigger.run():
            return event

    event = asyncio.run(asyncio.wait_for(first(), 10))
    assert event.payload["message"] == {"reason": "plain"}
