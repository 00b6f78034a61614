"""Request ids: the server's own for every request, and the client's ``X-Request-ID`` when valid.

The server's id is a random prefix per process (a forked child draws its own) and a counter,
unique without a system call per request. The log's ``request_id`` (what delayed labels join
by) is always one of them, so no client can make its rows share a key with another's; a
client's own id is logged beside it (``client_request_id``) when it fits ``MAX_REQUEST_ID_CHARS``
characters of ``_ID_CHARS``.
"""

from __future__ import annotations

import itertools
import os
import uuid
from typing import Any

_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count(1)


def _new_id_prefix() -> None:
    global _ID_PREFIX, _ID_COUNTER
    _ID_PREFIX, _ID_COUNTER = uuid.uuid4().hex[:16], itertools.count(1)


os.register_at_fork(after_in_child=_new_id_prefix)
_ID_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"
MAX_REQUEST_ID_CHARS = 128
REFUSED_REQUEST_ID = (
    f"X-Request-ID ignored: it must be 1-{MAX_REQUEST_ID_CHARS} characters of A-Z a-z 0-9 . _ : -; "
    "request_id is the server's id"
)


def request_ids(scope: dict[str, Any]) -> tuple[str, str | None, bool]:
    """(the server's request id, the client's valid ``X-Request-ID`` or None, whether one was refused)."""
    server_id = f"{_ID_PREFIX}-{next(_ID_COUNTER):x}"
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            if 0 < len(value) <= MAX_REQUEST_ID_CHARS and not value.translate(None, _ID_CHARS):
                return server_id, value.decode("ascii"), False
            return server_id, None, True
    return server_id, None, False
