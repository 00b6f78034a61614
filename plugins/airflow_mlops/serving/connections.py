"""Connection guards for the serving process: slow or idle clients cannot hold it.

uvicorn (0.54, httptools) times out only the idle gap between two requests of a
keep-alive connection: a client that connects and sends nothing, or sends half a request
head and stalls, or announces a body and never sends it, keeps its socket, its file
descriptor and (with ``--limit-concurrency``) a place forever. ``GuardedHttpToolsProtocol``
is uvicorn's httptools protocol with three more limits:

- the request head (request line and headers) must be complete within ``header_timeout``
  seconds of its first byte, or of the connection's opening: else 408 and the connection
  is closed;
- it may not pass ``max_header_bytes``: else 431 and closed;
- the body must be complete within ``body_timeout`` seconds of the head: else the
  connection is closed (the app sees a disconnect and answers nothing).

They cost nothing for a request that arrives in one read; otherwise one timer for what is
still missing. The limits come from ``LIMITS_ENV`` (JSON,
set by ``airflow-mlops serve``; uvicorn's workers are separate processes) and the counts
of connections closed by each are per process (``/metrics``).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

LIMITS_ENV = "AIRFLOW_MLOPS_SERVE_LIMITS"
PROTOCOL = "airflow_mlops.serving.connections:GuardedHttpToolsProtocol"  # uvicorn's ``http`` setting

# Connections this process closed, by the limit that closed them (head, head_size, body).
closed: Counter[str] = Counter()


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_header_bytes: int = 64 * 1024

    def check(self) -> None:
        if self.header_timeout <= 0 or self.body_timeout <= 0:
            raise ValueError("--header-timeout and --body-timeout must be > 0 seconds")
        if self.max_header_bytes < 1024:
            raise ValueError("--max-header-bytes must be at least 1024")

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ConnectionLimits:
        raw = os.environ.get(LIMITS_ENV)
        return cls(**json.loads(raw)) if raw else cls()


_limits: ConnectionLimits | None = None


def _current() -> ConnectionLimits:
    global _limits
    if _limits is None:
        _limits = ConnectionLimits.from_env()
    return _limits


def _answer(status: bytes) -> bytes:
    return b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


_TIMEOUT = _answer(b"408 Request Timeout")
_TOO_LARGE = _answer(b"431 Request Header Fields Too Large")


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head deadline, a head size limit and a body deadline.

    Timers are set only for what is still missing once a read has been parsed: a request that
    arrives in one read (the usual case) sets none.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = _current()
        self._header_timeout = limits.header_timeout
        self._body_timeout = limits.body_timeout
        self._max_header_bytes = limits.max_header_bytes
        self._deadline: asyncio.TimerHandle | None = None
        self._phase: str | None = None  # what the deadline waits for: "head" or "body"
        self._in_head = False  # a request head has begun and is not complete
        self._in_body = False  # a head is complete, its body is not
        self._head_bytes = 0
        self._messages = 0  # heads and complete requests parsed on this connection

    def _arm(self, phase: str, seconds: float) -> None:
        if self._phase == phase:
            return
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._phase = self.loop.call_later(seconds, self._expired, phase), phase

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._phase = None, None

    def _expired(self, phase: str) -> None:
        self._deadline, self._phase = None, None
        if self.transport.is_closing():
            return
        closed[phase] += 1
        if phase == "head" and (self.cycle is None or self.cycle.response_complete):
            self.transport.write(_TIMEOUT)  # no answer under way for it to collide with
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("head", self._header_timeout)  # a client that connects and says nothing

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        messages = self._messages
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._in_head:
            # Counted only when these bytes were all head (a read that ended a request may begin
            # the next head: not counted, so at most one read of it goes unseen).
            if messages == self._messages:
                self._head_bytes += len(data)
                if self._head_bytes > self._max_header_bytes:
                    closed["head_size"] += 1
                    self._disarm()
                    self.transport.write(_TOO_LARGE)
                    self.transport.close()
                    return
            self._arm("head", self._header_timeout)
        elif self._in_body:
            self._arm("body", self._body_timeout)
        elif self._phase is not None:
            self._disarm()  # nothing pending (e.g. the connect deadline of a request now complete)

    def on_message_begin(self) -> None:
        self._in_head, self._head_bytes = True, 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head, self._in_body = False, True
        self._messages += 1
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        self._messages += 1
        self._disarm()
        super().on_message_complete()
