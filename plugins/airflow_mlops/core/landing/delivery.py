"""Delivering claims: the moves of a claim, its delivery record, acknowledgement, redelivery.

Light (no pandas), like ``core.landing.inbox``: the triggerer runs it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from typing import Any

from airflow_mlops.core.io import storage
from airflow_mlops.core.landing import content as landed_content
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


def give_back(record: Claim, planned: dict[str, Any]) -> None:
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


def take(record: Claim, planned: dict[str, Any], version: dict[str, Any], stale_lock_seconds: float) -> str | None:
    if planned.get("lock"):
        return claim_s3.take(record, planned, version, stale_lock_seconds)
    try:
        os.rename(storage.local_path(planned["source"]), storage.local_path(planned["staged"]))
    except FileNotFoundError:
        return None  # claimed by someone else between listing and moving
    return landing_protocol.take_local(record, planned)


def placed(record: Claim, planned: dict[str, Any], where: str | None) -> None:
    if where is None:
        return
    landing_protocol.remove_marker(planned["source"], planned.get("marker"))
    if where == planned["target"]:
        record.claimed.append(where)
    else:
        landed_content.note_duplicate(record, planned)


def deliver(record: Claim, now: float) -> Claim | None:
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
    discard(record)
    return None


def recover(record: Claim, now: float, why: str) -> Claim | None:
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
            give_back(record, planned)
            where = None
        placed(record, planned, where)
    delivered = deliver(record, now)
    logger.warning(
        "claim %s recovered: %d file(s) delivered, %d duplicate(s) set aside, the rest left in the inbox",
        record.claim_id,
        len(record.claimed),
        len(record.duplicates),
    )
    return delivered


def discard(record: Claim) -> None:
    _remove_quietly(join(record.uri, MANIFEST))
    _remove_quietly(join(open_index(record.destination), record.claim_id))
    if not storage.is_s3(record.uri):
        with contextlib.suppress(OSError):
            os.rmdir(storage.local_path(record.uri))


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
            recovered = recover(record, now, gone)
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
