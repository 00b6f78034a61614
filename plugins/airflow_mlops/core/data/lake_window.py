"""Which lake batches a training run reads: the run's claimed files plus its history window.

Order. Lake batches are ordered by landing time, then by the batch date in the name, then by
the name:

1. the landing time is the inbox file's mtime (or the S3 object's LastModified) when it was
   claimed, which the claim records (``files[].landed_at``) and puts at the front of the lake
   name (``<landing time>-<random>-<original name>``, ``claim_records.claimed_name``); for a
   lake file without such a name (a labeled copy of a scored batch) it is the file's own
   modification time;
2. the batch date is the first date written ``YYYY-MM-DD``, ``YYYY_MM_DD`` or ``YYYYMMDD`` in
   the original name (``export-2026-11-02.csv``), when files landed at the same time;
3. then the original name, and the whole lake name last (its random part only makes names
   unique: it never decides which files train).

What a run reads (``select``):

- every file of the run's claims (the URIs its landing events delivered and it acknowledged),
  whatever their number, so that every landed file is trained on by the run that took it;
- plus the history: the newest ``window`` other batches of the lake that landed before the
  newest claimed file (without claims: the newest ``window`` batches);
- never a file of a claim not delivered yet (``claim_recovery.undelivered_targets``): that
  claim may still give the file back to the inbox, and it will be delivered to its own run.

A claimed file that is not read (quarantined or removed since it was claimed, or the spec
reads another source) is reported by the caller (``data_stages``).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from typing import Any

from airflow_mlops.core.io import storage
from airflow_mlops.core.landing.records import STAMP

_LAKE_NAME = re.compile(r"^(\d{8}T\d{12}Z)-[0-9a-f]{8}-(.+)$")
_DATE = re.compile(r"(?<!\d)(\d{4})[-_]?(\d{2})[-_]?(\d{2})(?!\d)")


def batch_date(name: str) -> str:
    """The first valid date in a file name, as ``YYYY-MM-DD``; "" when there is none."""
    for match in _DATE.finditer(name):
        try:
            return dt.date(*(int(part) for part in match.groups())).isoformat()
        except ValueError:
            continue
    return ""


def order_key(uri: str, modified_at: float) -> tuple[float, str, str, str]:
    """The sort key of one lake file: (landing time, batch date, original name, lake name)."""
    name = uri.rsplit("/", 1)[-1]
    match = _LAKE_NAME.match(name)
    if match is None:
        return (modified_at, batch_date(name), name, name)
    landed = dt.datetime.strptime(match.group(1), STAMP).replace(tzinfo=dt.UTC).timestamp()
    return (landed, batch_date(match.group(2)), match.group(2), name)


def listed(folder: str, suffixes: tuple[str, ...]) -> list[tuple[str, float]]:
    """The data files directly in ``folder`` with their modification times (one S3 listing)."""
    if not storage.is_s3(folder):
        found = []
        for uri in storage.list_files(folder, suffixes):
            try:
                found.append((uri, os.stat(storage.local_path(uri)).st_mtime))
            except FileNotFoundError:
                continue
        return found
    from airflow_mlops.core.io import s3

    bucket, prefix = s3.split(folder.rstrip("/") + "/")
    out = []
    paginator = s3.client_for(folder).get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        for item in page.get("Contents", []):
            if storage._is_data_name(item["Key"][len(prefix) :], suffixes):
                out.append((f"s3://{bucket}/{item['Key']}", item["LastModified"].timestamp()))
    return out


def ordered(folder: str, suffixes: tuple[str, ...]) -> list[str]:
    """The lake's batches oldest first (see the module's docstring), files of undelivered claims left out."""
    return [uri for _, uri in _keyed(folder, suffixes)]


def _keyed(folder: str, suffixes: tuple[str, ...]) -> list[tuple[Any, str]]:
    from airflow_mlops.core.landing.recovery import undelivered_targets

    hidden = undelivered_targets(folder)
    return sorted((order_key(uri, modified), uri) for uri, modified in listed(folder, suffixes) if uri not in hidden)


@dataclass
class LakeWindow:
    """What a run reads from the lake: ``uris`` (oldest first) = ``claimed`` + ``history``."""

    uris: list[str] = field(default_factory=list)
    claimed: list[str] = field(default_factory=list)
    history: list[str] = field(default_factory=list)


def select(
    folder: str, suffixes: tuple[str, ...], window: int, claimed: list[str] | tuple[str, ...] = ()
) -> LakeWindow:
    """The run's claimed files found in ``folder`` plus the newest ``window`` batches landed before them."""
    keyed = _keyed(folder, suffixes)
    wanted = set(claimed)
    mine = [(key, uri) for key, uri in keyed if uri in wanted]
    if mine:
        newest = mine[-1][0]
        history = [(key, uri) for key, uri in keyed if uri not in wanted and key < newest][-window:]
    else:
        history = keyed[-window:]
    return LakeWindow(
        uris=[uri for _, uri in sorted(mine + history)],
        claimed=[uri for _, uri in mine],
        history=[uri for _, uri in history],
    )
