"""Claiming S3 objects: S3 has no rename, so a claim is a lock, a conditional copy and a delete.

A claimer first creates a lock object for the file's exact version with a conditional PUT
(``If-None-Match: *``): of several claimers one wins. It then copies that version (a managed
copy: multipart for big objects) and deletes it, both only if its ETag is unchanged, so a
file overwritten meanwhile is left for the next poll. A copy that fails removes the lock
before the error is raised; a claimer that died holding a lock is completed or released by
the claim's recovery (``recover``), and a lock older than ``stale_lock_seconds`` that still
blocks a file is checked and released when its claim does not hold the file (``_blocked``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from typing import Any

from airflow_mlops.core.io import storage
from airflow_mlops.core.landing import content as landed_content
from airflow_mlops.core.landing.records import (
    LOCKS,
    Claim,
    _create_exclusively,
    _remove_quietly,
    claim_uri,
    claims_root,
    load_claim,
)
from airflow_mlops.layout import join, safe_segment

logger = logging.getLogger(__name__)

# A managed copy (``client.copy``) makes one CopyObject up to this size and a multipart copy
# (UploadPartCopy) above it: CopyObject refuses objects over 5 GB.
MULTIPART_COPY_THRESHOLD = 1024**3
MULTIPART_COPY_CHUNKSIZE = 256 * 1024**2


def _error_code(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _changed_or_gone(exc: BaseException) -> bool:
    """The S3 error of a conditional request on a version that was overwritten or deleted."""
    from airflow_mlops.core.io import s3

    return isinstance(exc, Exception) and (s3._is_missing(exc) or _error_code(exc) in ("PreconditionFailed", "412"))


def _lock_uri(source: str, version: dict[str, Any], destination: str) -> str:
    """The lock object of this exact version of ``source`` (key, ETag, modification second).

    Whole seconds: a listing gives milliseconds, a HEAD whole seconds, and both must name
    the same lock.
    """
    modified = float(int(version["modified_at"]))
    identity = f"{source}|{version['etag']}|{modified}".encode()
    day = dt.datetime.fromtimestamp(modified, dt.UTC).strftime("%Y-%m-%d")
    return join(claims_root(destination), LOCKS, day, hashlib.sha256(identity).hexdigest())


def _read_lock(lock: str) -> tuple[str, float] | None:
    """The claim id a lock holds and the lock's age in seconds; None when there is no lock."""
    from airflow_mlops.core.io import s3

    bucket, key = s3.split(lock)
    try:
        response = s3.client_for(lock).get_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if s3._is_missing(exc):
            return None
        raise
    holder = bytes(response["Body"].read()).decode(errors="replace").strip()
    return holder, time.time() - response["LastModified"].timestamp()


def _s3_etag(uri: str) -> str | None:
    """The current ETag of an S3 object; None when it does not exist."""
    from airflow_mlops.core.io import s3

    bucket, key = s3.split(uri)
    try:
        return str(s3.client_for(uri).head_object(Bucket=bucket, Key=key)["ETag"])
    except Exception as exc:
        if s3._is_missing(exc):
            return None
        raise


def _copy_version(source: str, target: str, etag: str, size: int | None = None) -> None:
    """Copy the version ``etag`` of the S3 object ``source`` to ``target``; raise if it changed.

    To S3 served by the same store (``core.io.s3.same_store``) this is a managed copy (multipart
    for big objects: CopyObject stops at 5 GB), conditional on the ETag for every part;
    elsewhere (a local lake, another account) the version is read (``If-Match``) and written.
    With ``size`` (the listed one) the copy must have it, or it is removed and ``RuntimeError``
    raised: the lake keeps what the claim fingerprinted.
    """
    from airflow_mlops.core.io import s3

    src_bucket, src_key = s3.split(source)
    client = s3.client_for(source)
    if storage.is_s3(target) and s3.same_store(source, target):
        from boto3.s3.transfer import TransferConfig

        dst_bucket, dst_key = s3.split(target)
        client.copy(
            {"Bucket": src_bucket, "Key": src_key},
            dst_bucket,
            dst_key,
            ExtraArgs={"CopySourceIfMatch": etag},
            Config=TransferConfig(
                multipart_threshold=MULTIPART_COPY_THRESHOLD, multipart_chunksize=MULTIPART_COPY_CHUNKSIZE
            ),
        )
    else:  # a local lake, or a lake another store serves: through this machine
        body = client.get_object(Bucket=src_bucket, Key=src_key, IfMatch=etag)["Body"].read()
        storage.write_bytes(bytes(body), target)
    if size is not None and storage.size(target) != size:
        copied = storage.size(target)
        _remove_quietly(target)
        raise RuntimeError(f"the copy of {source} (ETag {etag}) has {copied} bytes, the listing {size}")


def _delete_version(source: str, etag: str) -> None:
    """Delete the S3 object ``source`` if it is still version ``etag`` (best effort: logs failures).

    A store that rejects conditional deletes gets a HEAD, then an unconditional delete.
    """
    from airflow_mlops.core.io import s3

    bucket, key = s3.split(source)
    client = s3.client_for(source)
    try:
        try:
            client.delete_object(Bucket=bucket, Key=key, IfMatch=etag)
        except Exception as exc:
            if _error_code(exc) not in ("NotImplemented", "InvalidArgument", "InvalidRequest"):
                raise
            if _s3_etag(source) == etag:  # a store without conditional deletes
                client.delete_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if _error_code(exc) in ("PreconditionFailed", "412"):
            logger.info("%s was overwritten while being claimed: the new version stays for the next poll", source)
        elif not s3._is_missing(exc):
            logger.warning("claimed %s but could not delete it from the inbox: %s", source, exc)


def _release(lock: str, target: str) -> None:
    """Undo a claim of one S3 object that failed: remove the copy, if any, then the lock (best effort).

    The target name is unique to the claim, so it is ours to remove; without the lock, the
    next poll claims the file again.
    """
    for uri in (target, lock):
        try:
            _remove_quietly(uri)
        except Exception as exc:  # the lock stays: the claim's recovery or the stale-lock check frees it
            logger.warning("could not remove %s after a failed claim: %s", uri, exc)


def _take_version(source: str, target: str, etag: str, lock: str, size: int | None = None) -> bool:
    """Copy then delete one S3 object version under a lock held by the caller.

    False when the version changed or vanished meanwhile; any failure of the copy removes
    the copy and the lock before it is raised, so the file is never stranded behind its lock.
    """
    try:
        _copy_version(source, target, etag, size)
    except BaseException as exc:
        _release(lock, target)
        if _changed_or_gone(exc):
            return False  # gone, or overwritten since the listing: the new version is claimed later
        raise
    # Claimed: the copy is in the lake. A source left behind by a failed delete stays behind
    # its lock (never claimed twice) and is deleted by the stale-lock check of a later poll.
    _delete_version(source, etag)
    return True


def _blocked(source: str, etag: str, lock: str, destination: str, stale_lock_seconds: float) -> None:
    """A settled file's lock exists: normal while another claimer copies it; look if it is old.

    An old lock whose claim holds the file's copy (in the lake, or among the claim's
    duplicates) means the delete from the inbox failed: the source is deleted now. An old
    lock whose claim is missing, finished without this file, or abandoned without it, is
    released so that the next poll claims the file. A claim still ``claiming`` is left to its
    recovery (``core.landing.recovery``).
    """
    held = _read_lock(lock)
    if held is None:
        return  # released since: the next poll claims the file
    holder, age = held
    if age < stale_lock_seconds:
        return
    try:
        record: Claim | None = load_claim(claim_uri(destination, safe_segment(holder)))
    except (ValueError, KeyError, OSError):
        record = None  # missing or unreadable: no claim to wait for
    files = record.files if record is not None else []
    planned = next((p for p in files if p.get("lock") == lock or p["source"] == source), None)
    copies = [planned[k] for k in ("target", "kept_at") if planned is not None and planned.get(k)]
    copy = next((uri for uri in copies if storage.exists(uri)), None)
    if copy is not None:
        logger.warning("%s was claimed by %s (now %s) but is still in the inbox; deleting it", source, holder, copy)
        _delete_version(source, etag)
        return
    if record is not None and record.state == "claiming":
        logger.warning(
            "%s is blocked by the lock of claim %s (%.0f s old), which is still claiming: its recovery "
            "completes or releases it",
            source,
            holder,
            age,
        )
        return
    logger.warning(
        "%s was blocked by a stale lock (%.0f s old) of claim %s (%s): releasing it; the next poll claims the file",
        source,
        age,
        holder,
        "missing" if record is None else f"{record.state}, without this file",
    )
    _remove_quietly(lock)


def take(record: Claim, planned: dict[str, Any], version: dict[str, Any], stale_lock_seconds: float) -> str | None:
    """Claim one S3 object version; the URI it was copied to, or None when another claimer has it
    or it changed.

    The copy goes to the lake, or to the claim's duplicates when its content was delivered
    before (``core.landing.content``).
    """
    source, lock = planned["source"], planned["lock"]
    if not _create_exclusively(lock, record.claim_id.encode()):
        try:
            _blocked(source, version["etag"], lock, record.destination, stale_lock_seconds)
        except Exception as exc:  # only a check: the other files of the claim go on
            logger.warning("could not check the lock blocking %s: %s", source, exc)
        return None  # another claimer owns this exact version
    try:
        where = landed_content.place(record, planned)
    except BaseException:
        _remove_quietly(lock)
        raise
    if _take_version(source, where, planned["etag"], lock, planned.get("size")):
        return where
    landed_content.release(record.destination, planned.get("fingerprint"), record.claim_id)
    return None


def recover(record: Claim, planned: dict[str, Any]) -> str | None:
    """Complete or release one S3 move of a claim whose claimer died; where the file is, or None."""
    source, etag, lock = planned["source"], planned["etag"], planned["lock"]
    for copy in (planned["target"], planned.get("kept_at")):
        if copy and storage.exists(copy):
            _delete_version(source, etag)  # killed between the copy and the delete
            return str(copy)
    held = _read_lock(lock)
    if held is None or held[0] != record.claim_id:
        return None  # never locked by this claim, or released: the file is left for the next poll
    if _s3_etag(source) != etag:
        _remove_quietly(lock)  # gone or overwritten: the next poll claims the new version
        landed_content.release(record.destination, planned.get("fingerprint"), record.claim_id)
        return None
    logger.warning(
        "claim %s: completing the claim of %s, interrupted after its lock was taken", record.claim_id, source
    )
    where = landed_content.place(record, planned)
    if _take_version(source, where, etag, lock, planned.get("size")):
        return where
    landed_content.release(record.destination, planned.get("fingerprint"), record.claim_id)
    return None


def release(record: Claim, planned: dict[str, Any]) -> None:
    """Give one S3 file of a failed claim back: its copies and lock removed, its fingerprint released."""
    for copy in (planned["target"], planned.get("kept_at")):
        if copy:
            _remove_quietly(copy)
    _remove_quietly(planned["lock"])
    landed_content.release(record.destination, planned.get("fingerprint"), record.claim_id)
