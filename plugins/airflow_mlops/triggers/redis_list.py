"""Retrain messages from a Redis list, none lost across a triggerer restart (scheme ``redis+list``).

Airflow's Redis provider brings ``redis+pubsub`` only, which is at most once (docs/concepts.md).
This is the list counterpart, a message queue provider of this package (``provider_info``'s
``queues``), so ``MessageQueueTrigger(scheme="redis+list", key=..., redis_conn_id=...)`` finds it.

The reliable-queue pattern over Airflow 3.3's shared-stream ack mode
(``airflow.triggers.shared_stream``):

- ``BLMOVE <key> <key>:processing RIGHT LEFT``: a producer ``LPUSH``es, the trigger takes the
  oldest and parks it in the processing list in one atomic step;
- the filter checks the message (``core.landing.messages``) and yields the Asset event, or
  rejects a malformed one (logged, never an event);
- ``advance`` runs once the triggerer confirmed the event stored in the metadata database: only
  then ``LREM`` takes the message off the processing list (a rejected one goes to
  ``<key>:dead``, the last ``DEAD_LETTERS_KEPT`` kept; one nobody took goes back to the list);
- when a poll starts (a restarted triggerer, a replaced trigger) whatever is still in the
  processing list is delivered again first.

So at least once: a message is duplicated only when the triggerer dies between storing its
event and the ``LREM`` (one state sync, about a second). One trigger per list: several
consumers of one processing list would redeliver each other's messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable, Sequence
from typing import Any

from airflow.providers.common.messaging.providers.base_provider import BaseMessageQueueProvider
from airflow.triggers.base import BaseEventTrigger, TriggerEvent
from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome, SharedStreamProducer, reject_shared_stream_event

SCHEME = "redis+list"
DEAD_LETTERS_KEPT = 1000


def redis_client(redis_conn_id: str) -> Any:
    """An asyncio Redis client on the Airflow connection ``redis_conn_id`` (host, port, login,
    password, ``extra.db``, ``extra.ssl``), as the Redis provider's hook reads it."""
    import redis.asyncio as aioredis
    from airflow.providers.redis.hooks.redis import RedisHook

    conn = RedisHook.get_connection(redis_conn_id)
    extra = conn.extra_dejson or {}
    password = None if str(conn.password).lower() in ("none", "false", "") else conn.password
    return aioredis.Redis(
        host=conn.host or "localhost",
        port=int(conn.port or 6379),
        db=int(extra.get("db") or 0),
        username=conn.login or None,
        password=password,
        ssl=bool(extra.get("ssl", False)),
    )


class RedisListProducer(SharedStreamProducer):
    """The broker side of one poll: takes messages into the processing list, removes them when told."""

    def __init__(self, key: str, redis_conn_id: str, block_seconds: float) -> None:
        self.key, self.processing, self.dead = key, f"{key}:processing", f"{key}:dead"
        self.redis_conn_id, self.block_seconds = redis_conn_id, block_seconds
        self.client: Any = None

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        self.client = redis_client(self.redis_conn_id)
        for raw in reversed(await self.client.lrange(self.processing, 0, -1)):  # oldest first
            yield raw, raw  # taken by an earlier poll, never confirmed: deliver again
        while True:
            raw = await self.client.blmove(self.key, self.processing, self.block_seconds, "RIGHT", "LEFT")
            if raw is not None:
                yield raw, raw

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        async with self.client.pipeline(transaction=True) as tx:
            for item in batch:
                tx.lrem(self.processing, -1, item.broker_payload)  # the oldest copy: the one taken first
                if item.outcome.rejected:
                    tx.lpush(self.dead, item.broker_payload)
                    tx.ltrim(self.dead, 0, DEAD_LETTERS_KEPT - 1)
                elif not item.outcome.is_clean:  # an event not stored, or no subscriber: redeliver
                    tx.rpush(self.key, item.broker_payload)
            await tx.execute()

    def get_advance_lane(self, broker_payload: Any) -> Hashable:
        return None

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()


class RedisListTrigger(BaseEventTrigger):
    """Fire once per checked message taken from the Redis list ``key``.

    Payload: ``{"queue": "redis+list://<key>", "message": {...}}`` (the checked fields of
    ``core.landing.messages.RetrainMessage``).

    :param key: the list producers ``LPUSH`` JSON messages onto.
    :param redis_conn_id: the Airflow connection of the Redis server (``extra.db``: its database).
    :param block_seconds: how long one ``BLMOVE`` waits for a message.
    """

    def __init__(self, *, key: str, redis_conn_id: str = "redis_default", block_seconds: float = 5.0) -> None:
        super().__init__()
        self.key = key
        self.redis_conn_id = redis_conn_id
        self.block_seconds = block_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"key": self.key, "redis_conn_id": self.redis_conn_id, "block_seconds": self.block_seconds},
        )

    def shared_stream_key(self) -> Hashable | None:
        return (SCHEME, self.redis_conn_id, self.key)

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> SharedStreamProducer:
        return RedisListProducer(
            kwargs["key"], kwargs.get("redis_conn_id", "redis_default"), float(kwargs.get("block_seconds", 5.0))
        )

    def event_of(self, raw: Any) -> TriggerEvent | None:
        """The event of one raw message, or None (logged) when it is malformed."""
        from airflow_mlops.core.landing.messages import MessageError, parse_message

        try:
            message = parse_message(raw)
        except MessageError as exc:
            self.log.warning("dropped a message of %s://%s (kept in %s:dead): %s", SCHEME, self.key, self.key, exc)
            return None
        return TriggerEvent({"queue": f"{SCHEME}://{self.key}", "message": dict(message)})

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        async for raw in shared_stream:
            event = self.event_of(raw)
            if event is None:
                reject_shared_stream_event()
                continue
            yield event

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Without the triggerer's shared streams (a test, another runner): the same loop, each
        message removed once the runner took its event (not gated on the event being stored)."""
        producer = RedisListProducer(self.key, self.redis_conn_id, self.block_seconds)
        try:
            async for raw, token in producer.open_stream():
                event = self.event_of(raw)
                if event is not None:
                    yield event
                outcome = AdvanceOutcome(acked=0, failed=0, rejected=1) if event is None else AdvanceOutcome(1, 0)
                await producer.advance([AdvanceItem(token, outcome)])
        finally:
            await asyncio.shield(producer.aclose())


class RedisListQueueProvider(BaseMessageQueueProvider):
    """``scheme="redis+list"`` for Airflow's ``MessageQueueTrigger``: dispatches to ``RedisListTrigger``."""

    scheme = SCHEME

    def trigger_class(self) -> type[BaseEventTrigger]:
        return RedisListTrigger
