"""Claiming newly landed files, exactly once: light (no pandas) so the triggerer runs it.

Delivery is at least once and processing is idempotent, which together make every
landed file processed exactly once:

1. **Claim.** Settled files (unmodified for ``min_age_seconds``) are moved from the inbox
   into the lake under new, unique names (``<claim time>-<random>-<original name>``). The
   claim record is written first, beside the lake folder: ``<claims>/<claim id>/_manifest.json``
   (the planned moves) and an index entry ``<claims>/_open/<claim id>``, where ``<claims>``
   is ``<lake parent>/_claims/<lake folder name>``, so a crash half-way never
   strands a file outside a claim. A local file is first renamed to a hidden name in the
   inbox (``.claiming-<claim id>-<name>``; a rename is atomic, so one claimer wins), then
   moved to the lake (a rename, or a copy across filesystems). S3 has no rename: a claimer
   first creates a lock object for the file's exact version with a conditional PUT
   (``If-None-Match: *``), then copies it (a managed copy: multipart for big objects) and
   deletes it, both only if its ETag is unchanged. A copy that fails removes the lock before
   the error is raised; a claimer that died holding a lock is completed or released by the
   claim's recovery (4.), and a lock older than ``stale_lock_seconds`` that still blocks a
   file is checked and released when its claim does not hold the file.
2. **Deliver.** The trigger fires one event per claim with ``claim_id``, ``claim_uri`` and
   the ``claimed`` URIs, *after* the manifest is written.
3. **Acknowledge.** The consumer task creates ``<claim>/_ack-<dag id>.json`` exclusively,
   before processing: the first run of a DAG that takes a claim owns it. A later run of
   the same DAG that receives the claim again (a redelivered or duplicated event) finds
   another run's ack and skips it; a retry or clear of the owning run processes it again.
4. **Redeliver.** A claim with no ack at all is delivered again with exponential backoff:
   ``redeliver_after_seconds`` after its first delivery, then twice that, and so on, at most
   ``max_deliveries`` times in total, after which it is marked ``abandoned`` and logged.
   This closes the window where the triggerer dies between claiming the files and storing
   the event. The new delivery is recorded in the manifest *before* the event is fired, so
   a claim can never fire on every poll.

File names starting with ``.`` or ``_`` are never data, so nothing under ``_claims`` is
ever read as a batch, wherever it is.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from airflow_mlops.core import storage
from airflow_mlops.core.settings import join, safe_segment

logger = logging.getLogger(__name__)

CLAIMS = "_claims"
OPEN = "_open"
LOCKS = "_locks"
MANIFEST = "_manifest.json"
ACK_PREFIX = "_ack-"


def claimed_name(original: str, now: dt.datetime | None = None) -> str:
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{uuid.uuid4().hex[:8]}-{original}"


def new_claim_id(now: dt.datetime | None = None) -> str:
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{uuid.uuid4().hex[:12]}"


def claims_root(destination: str) -> str:
    """Where the claims into ``destination`` are recorded: ``<parent>/_claims/<destination name>``.

    Beside the lake folder, not in it: the lake holds data files only.
    """
    parent, _, name = destination.rstrip("/").rpartition("/")
    if not name or not parent or parent.endswith(":/") or parent.endswith(":"):
        return join(destination, CLAIMS)  # a bucket or filesystem root: no parent to use
    return join(parent, CLAIMS, name)


def claim_uri(destination: str, claim_id: str) -> str:
    return join(claims_root(destination), claim_id)


@dataclass
class Claim:
    """One claim: the files moved into the lake together, and their delivery history."""

    claim_id: str
    uri: str
    inbox: str
    destination: str
    state: str = "claiming"  # claiming -> claimed -> (abandoned)
    files: list[dict[str, str]] = field(default_factory=list)  # planned moves: source, target
    claimed: list[str] = field(default_factory=list)
    created_at: float = 0.0
    deliveries: list[float] = field(default_factory=list)  # epoch seconds of each event fired

    def manifest(self) -> dict[str, Any]:
        return {
            "claim_id": self.claim_id,
            "inbox": self.inbox,
            "destination": self.destination,
            "state": self.state,
            "files": self.files,
            "claimed": self.claimed,
            "created_at": self.created_at,
            "deliveries": self.deliveries,
        }

    @classmethod
    def from_manifest(cls, uri: str, data: dict[str, Any]) -> Claim:
        return cls(
            claim_id=data["claim_id"],
            uri=uri,
            inbox=data.get("inbox", ""),
            destination=data.get("destination", ""),
            state=data.get("state", "claimed"),
            files=list(data.get("files", [])),
            claimed=list(data.get("claimed", [])),
            created_at=float(data.get("created_at", 0.0)),
            deliveries=[float(t) for t in data.get("deliveries", [])],
        )

    def payload(self) -> dict[str, Any]:
        """The trigger event's payload (stored in the Asset event's ``extra``)."""
        return {
            "claim_id": self.claim_id,
            "claim_uri": self.uri,
            "claimed": list(self.claimed),
            "inbox": self.inbox,
            "delivery": len(self.deliveries),
        }

    def save(self) -> None:
        storage.write_json(self.manifest(), join(self.uri, MANIFEST))


def load_claim(uri: str) -> Claim:
    """The claim at ``uri``; FileNotFoundError when its manifest is missing (locally or on S3)."""
    manifest = join(uri, MANIFEST)
    try:
        data = storage.read_json(manifest)
    except FileNotFoundError:
        raise
    except Exception as exc:
        if storage.is_s3(manifest):
            from airflow_mlops.core import s3

            if s3._is_missing(exc):
                raise FileNotFoundError(manifest) from exc
        raise
    return Claim.from_manifest(uri, data)


# -- listing without the data-file filter (markers start with '_') ----------------------------


def _children(folder: str) -> list[str]:
    """Names directly under ``folder`` (files and sub-folders locally; objects and prefixes on S3)."""
    if storage.is_s3(folder):
        from airflow_mlops.core import s3

        bucket, prefix = s3.split(folder.rstrip("/") + "/")
        names: set[str] = set()
        paginator = s3._client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            names.update(item["Key"][len(prefix) :] for item in page.get("Contents", []))
            names.update(item["Prefix"][len(prefix) :].rstrip("/") for item in page.get("CommonPrefixes", []))
    else:
        path = storage.local_path(folder)
        names = set(os.listdir(path)) if os.path.isdir(path) else set()
    return sorted(name for name in names if name and not name.startswith("."))  # '.tmp-': writes in progress


def _remove_quietly(uri: str) -> None:
    try:
        if storage.is_s3(uri):
            from airflow_mlops.core import s3

            s3.delete(uri)
        else:
            os.remove(storage.local_path(uri))
    except FileNotFoundError:
        pass


def _create_exclusively(uri: str, data: bytes) -> bool:
    """Create ``uri`` with ``data`` only if it does not exist; True when this call created it.

    Locally the content is written to a temporary file and hard-linked into place (atomic,
    fails if the name exists, never exposes a half-written file). On S3 a conditional PUT
    (``If-None-Match: *``) does the same.
    """
    if storage.is_s3(uri):
        from airflow_mlops.core import s3

        bucket, key = s3.split(uri)
        try:
            s3._client().put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
        except Exception as exc:
            code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                return False
            raise
        return True
    path = storage.local_path(uri)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = os.path.join(os.path.dirname(path), f".tmp-{uuid.uuid4().hex}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as exc:  # a filesystem without hard links: an exclusive open instead
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    finally:
        os.remove(tmp)
    return True


# -- claiming ---------------------------------------------------------------------------------

# A managed copy (``client.copy``) makes one CopyObject up to this size and a multipart copy
# (UploadPartCopy) above it: CopyObject refuses objects over 5 GB.
MULTIPART_COPY_THRESHOLD = 1024**3
MULTIPART_COPY_CHUNKSIZE = 256 * 1024**2


def _listed(inbox: str, suffixes: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    """Data files directly in ``inbox`` with what identifies their version.

    On S3 the listing already carries each object's ETag and LastModified: no HEAD per file.
    """
    if not storage.is_s3(inbox):
        found = []
        for uri in storage.list_files(inbox, suffixes):
            try:
                found.append((uri, {"modified_at": storage.modified_at(uri)}))
            except FileNotFoundError:
                continue  # claimed by someone else since the listing
        return found
    from airflow_mlops.core import s3

    bucket, prefix = s3.split(inbox.rstrip("/") + "/")
    objects = []
    for page in s3._client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        for item in page.get("Contents", []):
            if storage._is_data_name(item["Key"][len(prefix) :], suffixes):
                version = {"modified_at": item["LastModified"].timestamp(), "etag": item["ETag"]}
                objects.append((f"s3://{bucket}/{item['Key']}", version))
    return sorted(objects, key=lambda pair: pair[0])


def _settled(inbox: str, suffixes: tuple[str, ...], min_age_seconds: float) -> list[tuple[str, dict[str, Any]]]:
    """Files in ``inbox`` unmodified for ``min_age_seconds``, with what identifies their version."""
    now = time.time()
    return [
        (uri, version)
        for uri, version in _listed(inbox, suffixes)
        # Modified recently: still being written, maybe. The next poll looks again.
        if not (min_age_seconds and now - version["modified_at"] < min_age_seconds)
    ]


def settled_files(inbox: str, suffixes: tuple[str, ...], min_age_seconds: float = 0.0) -> list[str]:
    """URIs of the files in ``inbox`` that look complete (unmodified for ``min_age_seconds``)."""
    return [uri for uri, _ in _settled(inbox, suffixes, min_age_seconds)]


def _error_code(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _changed_or_gone(exc: BaseException) -> bool:
    """The S3 error of a conditional request on a version that was overwritten or deleted."""
    from airflow_mlops.core import s3

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
    from airflow_mlops.core import s3

    bucket, key = s3.split(lock)
    try:
        response = s3._client().get_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if s3._is_missing(exc):
            return None
        raise
    holder = bytes(response["Body"].read()).decode(errors="replace").strip()
    return holder, time.time() - response["LastModified"].timestamp()


def _s3_etag(uri: str) -> str | None:
    """The current ETag of an S3 object; None when it does not exist."""
    from airflow_mlops.core import s3

    bucket, key = s3.split(uri)
    try:
        return str(s3._client().head_object(Bucket=bucket, Key=key)["ETag"])
    except Exception as exc:
        if s3._is_missing(exc):
            return None
        raise


def _copy_version(source: str, target: str, etag: str) -> None:
    """Copy the version ``etag`` of the S3 object ``source`` to ``target``; raise if it changed.

    To S3 this is a managed copy (multipart for big objects: CopyObject stops at 5 GB),
    conditional on the ETag for every part.
    """
    from airflow_mlops.core import s3

    src_bucket, src_key = s3.split(source)
    client = s3._client()
    if storage.is_s3(target):
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
    else:
        body = client.get_object(Bucket=src_bucket, Key=src_key, IfMatch=etag)["Body"].read()
        storage.write_bytes(bytes(body), target)


def _delete_version(source: str, etag: str) -> None:
    """Delete the S3 object ``source`` if it is still version ``etag`` (best effort: logs failures).

    A store that rejects conditional deletes gets a HEAD, then an unconditional delete.
    """
    from airflow_mlops.core import s3

    bucket, key = s3.split(source)
    client = s3._client()
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


def _take_version(source: str, target: str, etag: str, lock: str) -> bool:
    """Copy then delete one S3 object version under a lock held by the caller.

    False when the version changed or vanished meanwhile; any failure of the copy removes
    the copy and the lock before it is raised, so the file is never stranded behind its lock.
    """
    try:
        _copy_version(source, target, etag)
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

    An old lock whose claim holds the file's copy in the lake means the delete from the
    inbox failed: the source is deleted now. An old lock whose claim is missing, finished
    without this file, or abandoned without it, is released so that the next poll claims
    the file. A claim still ``claiming`` is left to its recovery (``redeliver_due``).
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
    if planned is not None and storage.exists(planned["target"]):
        logger.warning(
            "%s was claimed by %s (now %s) but is still in the inbox; deleting it", source, holder, planned["target"]
        )
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


def _move_from_s3(
    source: str,
    target: str,
    version: dict[str, Any],
    lock: str,
    destination: str,
    claim_id: str,
    stale_lock_seconds: float,
) -> bool:
    """Claim one S3 object version; False when another claimer has it or it changed.

    S3 has no rename: a lock object for this exact version is created with a conditional
    PUT, so only one claimer copies it; the copy and the delete are conditional on the
    ETag, so a file overwritten meanwhile is left for the next poll.
    """
    if not _create_exclusively(lock, claim_id.encode()):
        try:
            _blocked(source, version["etag"], lock, destination, stale_lock_seconds)
        except Exception as exc:  # only a check: the other files of the claim go on
            logger.warning("could not check the lock blocking %s: %s", source, exc)
        return False  # another claimer owns this exact version
    return _take_version(source, target, version["etag"], lock)


def _staged_name(source: str, claim_id: str) -> str:
    folder, _, name = source.rpartition("/")
    return f"{folder}/.claiming-{claim_id}-{name}"


def _move_local(source: str, staged: str, target: str) -> bool:
    """Rename ``source`` to a hidden name in the inbox (atomic: one claimer wins), then move it.

    The second step may cross filesystems or go to S3 (a copy): the file is already ours.
    """
    try:
        os.rename(storage.local_path(source), storage.local_path(staged))
    except FileNotFoundError:
        return False  # claimed by someone else between listing and moving
    storage.move(staged, target)
    return True


def _planned(uri: str, version: dict[str, Any], destination: str, claim_id: str, stamp: dt.datetime) -> dict[str, str]:
    """A planned move; for S3 with the version (ETag) and its lock, which recovery needs."""
    planned = {
        "source": uri,
        "staged": "" if storage.is_s3(uri) else _staged_name(uri, claim_id),
        "target": join(destination, claimed_name(uri.rsplit("/", 1)[-1], stamp)),
    }
    if storage.is_s3(uri):
        planned["etag"] = version["etag"]
        planned["lock"] = _lock_uri(uri, version, destination)
    return planned


def claim(
    inbox: str,
    destination: str,
    suffixes: tuple[str, ...],
    min_age_seconds: float = 0.0,
    now: float | None = None,
    stale_lock_seconds: float = 3600.0,
) -> Claim | None:
    """Claim every settled file in ``inbox``: move them into ``destination`` under one claim.

    Returns None when there is nothing to claim (or another claimer took everything).
    ``stale_lock_seconds``: an S3 lock older than this that blocks a settled file is looked
    at (see ``_blocked``); the trigger passes its ``redeliver_after_seconds``.
    """
    candidates = _settled(inbox, suffixes, min_age_seconds)
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
        files=[_planned(uri, version, destination, claim_id, stamp) for uri, version in candidates],
    )
    # The plan first: a crash from here on leaves a record that names where every file went.
    record.save()
    storage.write_bytes(claim_id.encode(), join(claims_root(destination), OPEN, claim_id))
    failed: Exception | None = None
    for (source, version), planned in zip(candidates, record.files, strict=True):
        target = planned["target"]
        if storage.is_s3(source):
            try:
                moved = _move_from_s3(
                    source, target, version, planned["lock"], destination, claim_id, stale_lock_seconds
                )
            except Exception as exc:  # its copy and lock are removed: the next poll tries it again
                logger.warning("could not claim %s: %s; the next poll tries again", source, exc)
                failed, moved = failed or exc, False
        else:
            moved = _move_local(source, planned["staged"], target)
        if moved:
            record.claimed.append(target)
    if not record.claimed:
        _discard(record)
        if failed is not None:
            raise failed
        return None
    record.state = "claimed"
    record.deliveries = [time.time() if now is None else now]
    record.save()
    return record


def _finish_moves(record: Claim) -> list[str]:
    """Targets of a claim whose claimer died: what it had taken is completed, the rest released.

    Locally, files it renamed but did not move are moved now. On S3, a copy in the lake
    means the file is claimed (its source is deleted if still there); a file locked by this
    claim but not copied is copied now if unchanged (same ETag), else its lock is removed so
    that the next poll claims the new version.
    """
    claimed = []
    for planned in record.files:
        staged, target = planned.get("staged"), planned["target"]
        if planned.get("lock"):
            if _recover_s3(record.claim_id, planned):
                claimed.append(target)
            continue
        if staged and not storage.exists(target) and storage.exists(staged):
            storage.move(staged, target)
        if storage.exists(target):
            claimed.append(target)
    return claimed


def _recover_s3(claim_id: str, planned: dict[str, str]) -> bool:
    """Complete or release one S3 move of a claim whose claimer died; True when it is claimed."""
    source, target, etag, lock = planned["source"], planned["target"], planned["etag"], planned["lock"]
    if storage.exists(target):
        _delete_version(source, etag)  # killed between the copy and the delete
        return True
    held = _read_lock(lock)
    if held is None or held[0] != claim_id:
        return False  # never locked by this claim, or released: the file is left for the next poll
    if _s3_etag(source) != etag:
        _remove_quietly(lock)  # gone or overwritten: the next poll claims the new version
        return False
    logger.warning("claim %s: completing the claim of %s, interrupted after its lock was taken", claim_id, source)
    return _take_version(source, target, etag, lock)


def _discard(record: Claim) -> None:
    _remove_quietly(join(record.uri, MANIFEST))
    _remove_quietly(join(claims_root(record.destination), OPEN, record.claim_id))
    if not storage.is_s3(record.uri):
        with contextlib.suppress(OSError):
            os.rmdir(storage.local_path(record.uri))


def claim_new_files(inbox: str, destination: str, suffixes: tuple[str, ...], min_age_seconds: float = 0.0) -> list[str]:
    """Claim the settled files in ``inbox`` (see ``claim``); return their new URIs."""
    record = claim(inbox, destination, suffixes, min_age_seconds)
    return list(record.claimed) if record else []


# -- acknowledging and redelivering --------------------------------------------------------------


def acks(uri: str) -> list[str]:
    """Ack marker names of the claim at ``uri``."""
    return [name for name in _children(uri) if name.startswith(ACK_PREFIX)]


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
    """The oldest unacknowledged claim due for another delivery, recorded as delivered now.

    A claim is due ``redeliver_after_seconds * 2**(n - 1)`` after its n-th delivery. The
    new delivery is written to the manifest before the caller fires the event, so an event
    lost again waits for the next, longer, interval: never a loop. Claims acknowledged are
    closed (their open index entry removed); claims past ``max_deliveries`` are abandoned.
    """
    now = time.time() if now is None else now
    index = join(claims_root(destination), OPEN)
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
        if record.state == "abandoned":
            _remove_quietly(join(index, claim_id))
            continue
        last = record.deliveries[-1] if record.deliveries else record.created_at
        attempts = max(len(record.deliveries), 1)
        if now - last < redeliver_after_seconds * 2 ** (attempts - 1):
            continue
        if record.state == "claiming":
            # Its claimer died while moving files: what it had taken is claimed.
            record.claimed = _finish_moves(record)
            if not record.claimed:
                _discard(record)
                continue
            record.state = "claimed"
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
    return _children(join(claims_root(destination), OPEN))
