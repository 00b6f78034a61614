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
ever read as a batch, wherever it is.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import time
from typing import Any

from airflow_mlops.core.io import storage
from airflow_mlops.core.landing import content as landed_content
from airflow_mlops.core.landing import notes as inbox_notes
from airflow_mlops.core.landing import protocol as landing_protocol
from airflow_mlops.core.landing import recovery as claim_recovery
from airflow_mlops.core.landing import s3_claims as claim_s3
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
from airflow_mlops.layout import join, safe_segment

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


def _give_back(record: Claim, planned: dict[str, Any]) -> None:
    """Return one file of a failed move to the inbox (best effort: what fails stays for recovery)."""
    try:
        if planned.get("lock"):
            claim_s3.release(record, planned)
            return
        staged = planned["staged"]
        landing_protocol.discard_copy(planned["target"])
        if os.path.exists(storage.local_path(staged)):
            back = claim_recovery.return_to_inbox(staged, planned["source"])
            logger.warning("claim %s: %s returned to the inbox as %s", record.claim_id, staged, back)
        landed_content.release(record.destination, planned.get("fingerprint"), record.claim_id)
    except Exception as exc:
        logger.warning("claim %s: could not give %s back to the inbox: %s", record.claim_id, planned["source"], exc)


def _take(record: Claim, planned: dict[str, Any], version: dict[str, Any], stale_lock_seconds: float) -> str | None:
    if planned.get("lock"):
        return claim_s3.take(record, planned, version, stale_lock_seconds)
    try:
        os.rename(storage.local_path(planned["source"]), storage.local_path(planned["staged"]))
    except FileNotFoundError:
        return None  # claimed by someone else between listing and moving
    return landing_protocol.take_local(record, planned)


def _placed(record: Claim, planned: dict[str, Any], where: str | None) -> None:
    if where is None:
        return
    landing_protocol.remove_marker(planned["source"], planned.get("marker"))
    if where == planned["target"]:
        record.claimed.append(where)
    else:
        landed_content.note_duplicate(record, planned)


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
                where = _take(record, planned, version, stale_lock_seconds)
            except Exception as exc:  # e.g. the disk full: the file goes back, the next poll tries again
                logger.warning("could not claim %s: %s; the next poll tries again", source, exc)
                _give_back(record, planned)
                failed, where = failed or exc, None
            _placed(record, planned, where)
        delivered = _deliver(record, time.time() if now is None else now)
    if delivered is None and failed is not None:
        raise failed
    return delivered


def _deliver(record: Claim, now: float) -> Claim | None:
    """Close the claiming of ``record``: delivered (first delivery ``now``) when files reached the
    lake; closed as ``duplicates`` when every file was a copy; discarded when nothing was taken."""
    if record.claimed:
        record.state = "claimed"
        record.deliveries = [now]
        record.save()
        return record
    if record.duplicates:
        record.state = "duplicates"
        record.save()
        _remove_quietly(join(open_index(record.destination), record.claim_id))
        return None
    _discard(record)
    return None


def _recover(record: Claim, now: float, why: str) -> Claim | None:
    """Finish or roll back the moves of a claim whose claimer is gone, then deliver it (or not).

    Locally, files it renamed but did not move are moved now. On S3, a copy in the lake
    means the file is claimed (its source is deleted if still there); a file locked by this
    claim but not copied is copied now if unchanged (same ETag), else its lock is removed so
    that the next poll claims the new version. A file that cannot be moved now goes back to
    the inbox.
    """
    age = now - record.created_at
    logger.warning(
        "claim %s was never delivered (%s, %.0f s ago): recovering its file(s) %s",
        record.claim_id,
        why,
        age,
        record.planned_names(),
    )
    record.claimed, record.duplicates = [], []
    for planned in record.files:
        try:
            if planned.get("lock"):
                where = claim_s3.recover(record, planned)
            else:
                where = landing_protocol.take_local(record, planned)
        except Exception as exc:
            logger.warning("claim %s: could not finish moving %s: %s", record.claim_id, planned["source"], exc)
            _give_back(record, planned)
            where = None
        _placed(record, planned, where)
    delivered = _deliver(record, now)
    logger.warning(
        "claim %s recovered: %d file(s) delivered, %d duplicate(s) set aside, the rest left in the inbox",
        record.claim_id,
        len(record.claimed),
        len(record.duplicates),
    )
    return delivered


def _discard(record: Claim) -> None:
    _remove_quietly(join(record.uri, MANIFEST))
    _remove_quietly(join(open_index(record.destination), record.claim_id))
    if not storage.is_s3(record.uri):
        with contextlib.suppress(OSError):
            os.rmdir(storage.local_path(record.uri))


def claim_new_files(inbox: str, destination: str, suffixes: tuple[str, ...], min_age_seconds: float = 0.0) -> list[str]:
    """Claim the settled files in ``inbox`` (see ``claim``); return their new URIs."""
    record = claim(inbox, destination, suffixes, min_age_seconds)
    return list(record.claimed) if record else []


# -- acknowledging and redelivering --------------------------------------------------------------


def is_acknowledged(uri: str) -> bool:
    return bool(acks(uri))


def acknowledge(uri: str, owner: dict[str, str]) -> dict[str, Any]:
    """Take the claim at ``uri`` for ``owner`` (``dag_id``, ``run_id``, ...) unless its DAG has.

    Returns the ack that holds: ``owner``'s when this call created it, else the existing one
    (compare its ``dag_id``/``run_id`` to know whether the caller owns the claim).
    """
    marker = join(uri, f"{ACK_PREFIX}{safe_segment(owner['dag_id'])}.json")
    record = {**owner, "acked_at": time.time()}
    if _create_exclusively(marker, json.dumps(record, sort_keys=True).encode()):
        return record
    try:
        existing = storage.read_json(marker)
    except (ValueError, OSError):
        logger.warning("unreadable ack %s: treating the claim as taken by another run", marker)
        return {"dag_id": owner["dag_id"], "run_id": "<unreadable>"}
    return dict(existing)


def redeliver_due(
    destination: str,
    redeliver_after_seconds: float,
    max_deliveries: int,
    now: float | None = None,
) -> Claim | None:
    """The oldest open claim to deliver now: one never delivered whose claimer is gone, or an
    unacknowledged one due for another delivery; recorded as delivered before it is returned.

    A claim never delivered (its claimer died, see ``core.landing.recovery``) is recovered and
    delivered at once. A delivered claim is due ``redeliver_after_seconds * 2**(n - 1)`` after
    its n-th delivery. The new delivery is written to the manifest before the caller fires
    the event, so an event lost again waits for the next, longer, interval: never a loop.
    Claims acknowledged are closed (their open index entry removed); claims past
    ``max_deliveries`` are abandoned. A claim still being claimed is left alone (and logged
    when older than the claim lease).
    """
    now = time.time() if now is None else now
    index = open_index(destination)
    for claim_id in _children(index):
        uri = claim_uri(destination, claim_id)
        if is_acknowledged(uri):
            _remove_quietly(join(index, claim_id))
            continue
        try:
            record = load_claim(uri)
        except FileNotFoundError:
            _remove_quietly(join(index, claim_id))  # a claim discarded half-way
            continue
        if record.state in ("abandoned", "duplicates"):
            _remove_quietly(join(index, claim_id))
            continue
        if record.state == "claiming":
            gone = claim_recovery.claimer_gone(record, now)
            if gone is None:
                if now - record.created_at > claim_recovery.LEASE_SECONDS:
                    logger.warning(
                        "claim %s is still claiming after %.0f s: file(s) %s",
                        claim_id,
                        now - record.created_at,
                        record.planned_names(),
                    )
                continue
            recovered = _recover(record, now, gone)
            if recovered is not None:
                return recovered
            continue
        last = record.deliveries[-1] if record.deliveries else record.created_at
        attempts = max(len(record.deliveries), 1)
        if now - last < redeliver_after_seconds * 2 ** (attempts - 1):
            continue
        if len(record.deliveries) >= max_deliveries:
            record.state = "abandoned"
            record.save()
            _remove_quietly(join(index, claim_id))
            logger.error(
                "claim %s was delivered %d times and never acknowledged; giving up. Its files are in "
                "the lake: %s (process them by hand, e.g. conf {'input_uris': [...]})",
                claim_id,
                len(record.deliveries),
                record.claimed,
            )
            continue
        record.deliveries.append(now)
        record.save()
        logger.warning(
            "claim %s has no ack %.0f s after delivery %d: delivering it again",
            claim_id,
            now - last,
            len(record.deliveries) - 1,
        )
        return record
    return None


def open_claims(destination: str) -> list[str]:
    """Ids of the claims not yet acknowledged nor abandoned (as the last scan left them)."""
    return _children(open_index(destination))
