"""Claiming newly landed files: light (fsspec only) so the triggerer can run it.

A file is claimed by moving it from the landing inbox into the pipeline's lake under a
new, unique name (``<claim time>-<random>-<original name>``): a file name that repeats
upstream (``export.parquet`` every day) never overwrites an earlier batch, and lake
files sort in arrival order. On a local filesystem the move is an atomic rename, so two
pollers can never both claim one file. Files modified in the last ``min_age_seconds``
are left for the next poll: a writer may still be appending to them.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

from airflow_mlops.core import storage
from airflow_mlops.core.settings import join


def claimed_name(original: str, now: dt.datetime | None = None) -> str:
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{uuid.uuid4().hex[:8]}-{original}"


def claim_new_files(inbox: str, destination: str, suffixes: tuple[str, ...], min_age_seconds: float = 0.0) -> list[str]:
    """Move every settled file in ``inbox`` to ``destination``; return the new URIs."""
    claimed = []
    for uri in storage.list_files(inbox, suffixes):
        if min_age_seconds and time.time() - storage.modified_at(uri) < min_age_seconds:
            continue
        target = join(destination, claimed_name(uri.rsplit("/", 1)[-1]))
        try:
            storage.move(uri, target)
        except FileNotFoundError:
            continue  # claimed by someone else between listing and moving
        claimed.append(target)
    return claimed
