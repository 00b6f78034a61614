"""What an inbox listing leaves out, said once per file: light (os and logging), the triggerer runs it.

The landing trigger claims only data files directly in the inbox (``core.landing.inbox``). A file in
a subfolder, or with a suffix ingestion does not read (``.xlsx``, ``.CSV``: suffixes are
case-sensitive), would otherwise wait there forever without a word. Each is logged as a warning
the first time a listing sees it in this process (every poll lists the inbox again), naming
the file and why it is not claimed. Names starting with ``.`` or ``_`` are writes in progress
or markers and are never mentioned.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from airflow_mlops.core.io import storage

logger = logging.getLogger(__name__)

MAX_REMEMBERED = 10_000  # distinct ignored files remembered per process; past it the oldest may be said again
_said: dict[str, None] = {}  # insertion-ordered: the oldest is forgotten first
_lock = threading.Lock()  # triggers may list from several threads


def _say(uri: str, why: str) -> None:
    with _lock:
        if uri in _said:
            return
        if len(_said) >= MAX_REMEMBERED:
            _said.pop(next(iter(_said)))
        _said[uri] = None
    logger.warning("inbox entry %s ignored: %s; it is never claimed", uri, why)


def _why(name: str, is_folder: bool, suffixes: tuple[str, ...]) -> str | None:
    if name.startswith((".", "_")):
        return None
    if is_folder:
        return "a folder (the inbox is not read recursively: land files directly in it)"
    if not name.endswith(suffixes):
        return f"unknown suffix (ingestion reads {sorted(suffixes)}, case-sensitive)"
    return None


def note_ignored(inbox: str, suffixes: tuple[str, ...]) -> None:
    """Log each entry directly in a local ``inbox`` that no listing will claim (once per entry)."""
    try:
        entries = list(os.scandir(storage.local_path(inbox)))
    except OSError:
        return
    for entry in entries:
        why = _why(entry.name, entry.is_dir(), suffixes)
        if why:
            _say(storage.join(inbox, entry.name), why)


def note_ignored_s3(inbox: str, page: dict[str, Any], prefix: str, suffixes: tuple[str, ...]) -> None:
    """The same for one page of an S3 listing with ``Delimiter="/"`` (objects and sub-prefixes)."""
    bucket = inbox.removeprefix("s3://").split("/", 1)[0]
    for item in page.get("Contents", []):
        name = item["Key"][len(prefix) :]
        why = _why(name, False, suffixes) if name else None
        if why:
            _say(f"s3://{bucket}/{item['Key']}", why)
    for common in page.get("CommonPrefixes", []):
        name = common["Prefix"][len(prefix) :].rstrip("/")
        why = _why(name, True, suffixes)
        if why:
            _say(f"s3://{bucket}/{common['Prefix']}", why)
