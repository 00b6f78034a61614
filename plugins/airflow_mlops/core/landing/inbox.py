"""Claiming newly landed files, exactly once: light (no pandas) so the triggerer runs it.

Delivery is at least once and processing is idempotent, which together make every
landed file processed exactly once:

1. **Claim.** Files complete by the producer protocol (``core.landing.protocol``: no name
   of a write in progress, no link, the marker if one is required, size and mtime unchanged
   over ``settle_seconds``, unmodified for ``min_age_seconds``) are taken into the lake under
   new, unique names (``<landing time>-<random>-<original name>``, the landing time being the
   file's mtime or the object's LastModified: the lake sorts by it, see ``core.data.lake_window``).
   The claim record is written first, beside the lake folder: ``<claims>/<claim
   id>/_manifest.json`` (the planned moves, state ``claiming``) and an index entry
   ``<claims>/_open/<claim id>``, where ``<claims>`` is ``<lake parent>/_claims/<lake folder
   name>``, so a crash half-way never strands a file outside a claim. A local file is first
   renamed to a hidden name in the inbox (``.claiming-<claim id>-<name>``; a rename is atomic,
   so one claimer wins), then copied to the lake while it is fingerprinted; the copy is kept
   only if the file did not change meanwhile (a producer still writing gets it back), so a
   writer holding the file open never reaches the lake. S3 objects are locked, copied (on
   their listed ETag) and deleted (``core.landing.s3_claims``). A file whose content was delivered
   before is set aside, not delivered (``core.landing.content``). A move that fails gives its
   file back to the inbox.
2. **Deliver.** The claim becomes ``claimed`` with its first delivery recorded, and the
   trigger fires one event per claim with ``claim_id``, ``claim_uri`` and the ``claimed``
   URIs. A claim whose claimer died before this point is recovered by the next scan, without
   waiting (``core.landing.recovery``): its moves are finished or rolled back and what reached
   the lake is delivered. Until then no window reads its files.
3. **Acknowledge.** The consumer task creates ``<claim>/_ack-<dag id>.json`` exclusively,
   before processing: the first run of a DAG that takes a claim owns it. A later run of
   the same DAG that receives the claim again (a redelivered or duplicated event) finds
   another run's ack and skips it; a retry or clear of the owning run processes it again.
4. **Redeliver.** A delivered claim with no ack at all is delivered again with exponential
   backoff: ``redeliver_after_seconds`` after its first delivery, then twice that, and so on,
   at most ``max_deliveries`` times in total, after which it is marked ``abandoned`` and
   logged. This closes the window where the triggerer dies between delivering the claim and
   storing the event. The new delivery is recorded in the manifest *before* the event is
   fired, so a claim can never fire on every poll.

File names starting with ``.`` or ``_`` are never data, so nothing under ``_claims`` is
ever read as a batch, wherever it is."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from airflow_mlops.core.io import storage
from airflow_mlops.core.landing import content as landed_content
from airflow_mlops.core.landing import notes as inbox_notes
from airflow_mlops.core.landing import protocol as landing_protocol
from airflow_mlops.core.landing import recovery as claim_recovery
from airflow_mlops.core.landing import s3_claims as claim_s3
from airflow_mlops.core.landing.delivery import deliver, give_back, placed, take
from airflow_mlops.core.landing.records import (  # noqa: F401  (the names this module always offered)
    ACK_PREFIX,
    CLAIMS,
    DUPLICATES,
    LOCKS,
    MANIFEST,
    OPEN,
    Claim,
    _children,
    _create_exclusively,
    _remove_quietly,
    acks,
    claim_uri,
    claimed_name,
    claims_root,
    load_claim,
    new_claim_id,
    open_index,
)
from airflow_mlops.layout import join

logger = logging.getLogger(__name__)


MULTIPART_COPY_THRESHOLD = claim_s3.MULTIPART_COPY_THRESHOLD


def _listed(inbox: str, suffixes: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    """Data files directly in ``inbox`` with what identifies their version.

    On S3 the listing already carries each object's ETag and LastModified: no HEAD per file.
    """
    if not storage.is_s3(inbox):
        inbox_notes.note_ignored(inbox, suffixes)  # a subfolder or an unknown suffix: said once per file
        found = []
        for uri in storage.list_files(inbox, suffixes):
            try:
                found.append((uri, {"modified_at": storage.modified_at(uri)}))
            except FileNotFoundError:
                continue  # claimed by someone else since the listing
        return found
    from airflow_mlops.core.io import s3

    bucket, prefix = s3.split(inbox.rstrip("/") + "/")
    objects = []
    paginator = s3.client_for(inbox).get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        inbox_notes.note_ignored_s3(inbox, page, prefix, suffixes)
        for item in page.get("Contents", []):
            if storage._is_data_name(item["Key"][len(prefix) :], suffixes):
                version = {"modified_at": item["LastModified"].timestamp(), "etag": item["ETag"], "size": item["Size"]}
                objects.append((f"s3://{bucket}/{item['Key']}", version))
    return sorted(objects, key=lambda pair: pair[0])


def _settled(
    inbox: str,
    suffixes: tuple[str, ...],
    min_age_seconds: float,
    settle_seconds: float = 0.0,
    require_marker: str | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """Files in ``inbox`` that are complete by the producer protocol (``core.landing.protocol``).

    Not in progress by name, not a link, marked (with ``require_marker``), unchanged over
    ``settle_seconds`` of observations and unmodified for ``min_age_seconds``; each with what
    identifies its version.
    """
    now = time.time()
    listed = landing_protocol.admissible(inbox, _listed(inbox, suffixes))
    if settle_seconds:
        listed = landing_protocol.OBSERVED.settled(inbox, listed, settle_seconds)
    return [
        (uri, version)
        for uri, version in listed
        # Modified recently: still being written, maybe. The next poll looks again.
        if not (min_age_seconds and now - version["modified_at"] < min_age_seconds)
        and (not require_marker or landing_protocol.marker_ready(uri, version, require_marker))
    ]


def settled_files(
    inbox: str,
    suffixes: tuple[str, ...],
    min_age_seconds: float = 0.0,
    settle_seconds: float = 0.0,
    require_marker: str | None = None,
) -> list[str]:
    """URIs of the files in ``inbox`` that look complete (see ``_settled``)."""
    return [uri for uri, _ in _settled(inbox, suffixes, min_age_seconds, settle_seconds, require_marker)]


def _staged_name(source: str, claim_id: str) -> str:
    folder, _, name = source.rpartition("/")
    return f"{folder}/.claiming-{claim_id}-{name}"


def _planned(uri: str, version: dict[str, Any], record: Claim, require_marker: str | None = None) -> dict[str, Any]:
    """A planned move: where the file goes (the lake, or the claim's duplicates), when it landed,
    its marker if any, and the version: locally the size and mtime listed (the copy checks them),
    on S3 the ETag, its fingerprint and its lock, which recovery needs."""
    name = uri.rsplit("/", 1)[-1]
    planned: dict[str, Any] = {
        "source": uri,
        "staged": "" if storage.is_s3(uri) else _staged_name(uri, record.claim_id),
        "target": join(record.destination, claimed_name(name, version["modified_at"])),
        "kept_at": join(record.uri, DUPLICATES, name),
        "landed_at": version["modified_at"],
    }
    if require_marker:
        planned["marker"] = require_marker
    if storage.is_s3(uri):
        planned["etag"] = version["etag"]
        planned["size"] = version.get("size", 0)
        planned["fingerprint"] = landed_content.s3_fingerprint(version["etag"], version.get("size", 0))
        planned["lock"] = claim_s3._lock_uri(uri, version, record.destination)
    else:
        planned["listed"] = _listed_identity(uri, version)
    return planned


def _listed_identity(uri: str, version: dict[str, Any]) -> list[int] | None:
    """(size, mtime_ns) of a local file as it settled; None when it is gone (claimed by another)."""
    if "mtime_ns" in version:
        return [version["size"], version["mtime_ns"]]
    try:
        return list(landing_protocol.identity(uri, version))
    except FileNotFoundError:
        return None


def claim(
    inbox: str,
    destination: str,
    suffixes: tuple[str, ...],
    min_age_seconds: float = 0.0,
    now: float | None = None,
    stale_lock_seconds: float = 3600.0,
    settle_seconds: float = 0.0,
    require_marker: str | None = None,
) -> Claim | None:
    """Claim every settled file in ``inbox``: move them into ``destination`` under one claim.

    Returns the claim, delivered (its first delivery recorded), or None when there is
    nothing new to deliver (nothing settled, another claimer took everything, or every file
    was a copy of content delivered before). A file whose move fails goes back to the inbox
    and the next poll tries again; when no file could be claimed the first error is raised.
    ``stale_lock_seconds``: an S3 lock older than this that blocks a settled file is looked
    at (see ``claim_s3._blocked``); the trigger passes its ``redeliver_after_seconds``.
    ``settle_seconds`` and ``require_marker``: the producer protocol (``core.landing.protocol``).
    """
    candidates = _settled(inbox, suffixes, min_age_seconds, settle_seconds, require_marker)
    if not candidates:
        return None
    stamp = dt.datetime.fromtimestamp(now, dt.UTC) if now is not None else dt.datetime.now(dt.UTC)
    claim_id = new_claim_id(stamp)
    record = Claim(
        claim_id=claim_id,
        uri=claim_uri(destination, claim_id),
        inbox=inbox,
        destination=destination,
        created_at=stamp.timestamp(),
        claimer=claim_recovery.claimer_identity(),
    )
    record.files = [_planned(uri, version, record, require_marker) for uri, version in candidates]
    with claim_recovery.claiming(record):
        # The plan first: a crash from here on leaves a record that names where every file went.
        record.save()
        storage.write_bytes(claim_id.encode(), join(open_index(destination), claim_id))
        failed: Exception | None = None
        for (source, version), planned in zip(candidates, record.files, strict=True):
            try:
                where = take(record, planned, version, stale_lock_seconds)
            except Exception as exc:  # e.g. the disk full: the file goes back, the next poll tries again
                logger.warning("could not claim %s: %s; the next poll tries again", source, exc)
                give_back(record, planned)
                failed, where = failed or exc, None
            placed(record, planned, where)
        delivered = deliver(record, time.time() if now is None else now)
    if delivered is None and failed is not None:
        raise failed
    return delivered


def claim_new_files(inbox: str, destination: str, suffixes: tuple[str, ...], min_age_seconds: float = 0.0) -> list[str]:
    """Claim the settled files in ``inbox`` (see ``claim``); return their new URIs."""
    record = claim(inbox, destination, suffixes, min_age_seconds)
    return list(record.claimed) if record else []
