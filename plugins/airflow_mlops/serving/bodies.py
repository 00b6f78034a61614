"""Request bodies off the wire: read within the size limit, decoded on the loop or in a thread.

``read_body`` holds no more than ``max_bytes`` of a body (a declared ``Content-Length`` over
it is refused before a byte is read) and raises ``ClientGone`` when the client leaves
mid-body. ``decode`` runs ``payload.parse_body``: small bodies on the event loop, large ones
in one of ``DECODE_THREADS`` threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from airflow_mlops.serving.payload import InputSchema, ModelInputs, parse_body

# Bodies over this are decoded off the event loop (about 330 rows of the churn spec, ~0.5 ms
# to parse here); smaller ones on it. At most DECODE_THREADS large bodies decode at once.
OFFLOAD_BODY_BYTES = 64 * 1024
DECODE_THREADS = 2


class ClientGone(Exception):
    """The client disconnected before sending its whole body."""


async def read_body(
    scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]], max_bytes: int
) -> bytes | None:
    """The request body; None when it exceeds ``max_bytes``; raises ``ClientGone`` on a disconnect.

    A declared ``Content-Length`` over the limit is refused before a byte is read; the
    bytes read are counted as they arrive, so no more than the limit is ever held.
    """
    for key, value in scope["headers"]:
        if key == b"content-length":
            if value.isdigit() and int(value) > max_bytes:
                return None
            break
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def decode(body: bytes, schema: InputSchema) -> ModelInputs:
    """``parse_body``, in a decoding thread for bodies over ``OFFLOAD_BODY_BYTES``.

    A small body is decoded on the loop (a thread hop would cost more than the decode);
    a large one in one of ``DECODE_THREADS`` threads, so the loop keeps answering (health
    checks included) and at most that many large trees are alive at once.
    """
    if len(body) <= OFFLOAD_BODY_BYTES:
        return parse_body(body, schema)
    return await asyncio.get_running_loop().run_in_executor(_decode_pool(), parse_body, body, schema)


@functools.cache
def _decode_pool() -> concurrent.futures.ThreadPoolExecutor:
    """The threads that decode large bodies (made at the first one; idle threads cost nothing)."""
    return concurrent.futures.ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="decode-body")
