"""The records of landing claims: names, the claim manifest, and the store primitives they need.

Light (no pandas): the triggerer imports it. ``core.landing.inbox`` claims, acknowledges and
redelivers; ``core.landing.recovery`` recovers claims whose claimer died; ``core.landing.content``
keeps the content fingerprints of delivered files. They all read and write what is here:

- ``<claims>/<claim id>/_manifest.json``: the planned moves and the delivery history,
- ``<claims>/_open/<claim id>``: the claims not yet closed (acknowledged, abandoned or all duplicates),
- ``<claims>/<claim id>/_ack-<dag id>.json``: who took the claim,
- ``<claims>/<claim id>/_heartbeat``: the claimer is alive (while a claim takes long),

where ``<claims>`` is ``<lake parent>/_claims/<lake folder name>``.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

from airflow_mlops.core.contracts import ClaimEvent
from airflow_mlops.core.io import storage
from airflow_mlops.layout import join

logger = logging.getLogger(__name__)

CLAIMS = "_claims"
OPEN = "_open"
LOCKS = "_locks"
MANIFEST = "_manifest.json"
ACK_PREFIX = "_ack-"
HEARTBEAT = "_heartbeat"
DUPLICATES = "duplicates"  # <claim>/duplicates/<name>: files whose content was delivered before
STAMP = "%Y%m%dT%H%M%S%fZ"


def claimed_name(original: str, landed: dt.datetime | float | None = None) -> str:
    """A lake name: ``<landing time>-<random>-<original name>``, unique, and sortable by landing time.

    ``landed`` is when the file landed (the inbox file's mtime or the object's LastModified),
    by default now; the window order (``core.data.lake_window``) reads it back from the name.
    """
    if isinstance(landed, (int, float)):
        landed = dt.datetime.fromtimestamp(landed, dt.UTC)
    stamp = (landed or dt.datetime.now(dt.UTC)).strftime(STAMP)
    return f"{stamp}-{uuid.uuid4().hex[:8]}-{original}"


def new_claim_id(now: dt.datetime | None = None) -> str:
    stamp = (now or dt.datetime.now(dt.UTC)).strftime(STAMP)
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
    state: str = "claiming"  # claiming -> claimed -> (abandoned) | claiming -> duplicates (nothing new)
    files: list[dict[str, Any]] = field(default_factory=list)  # planned moves: source, target, ...
    claimed: list[str] = field(default_factory=list)
    created_at: float = 0.0
    deliveries: list[float] = field(default_factory=list)  # epoch seconds of each event fired
    claimer: dict[str, Any] = field(default_factory=dict)  # host, pid, process start: who is claiming
    duplicates: list[dict[str, str]] = field(default_factory=list)  # source, kept_at, same_as

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
            "claimer": self.claimer,
            "duplicates": self.duplicates,
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
            claimer=dict(data.get("claimer") or {}),
            duplicates=list(data.get("duplicates", [])),
        )

    def payload(self) -> ClaimEvent:
        """The trigger event's payload (stored in the Asset event's ``extra``)."""
        return {
            "claim_id": self.claim_id,
            "claim_uri": self.uri,
            "claimed": list(self.claimed),
            "inbox": self.inbox,
            "delivery": len(self.deliveries),
            "duplicates": [d["source"].rsplit("/", 1)[-1] for d in self.duplicates],
        }

    def planned_names(self) -> list[str]:
        """The names of the files this claim planned to take (as they were in the inbox)."""
        return [planned["source"].rsplit("/", 1)[-1] for planned in self.files]

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
            from airflow_mlops.core.io import s3

            if s3._is_missing(exc):
                raise FileNotFoundError(manifest) from exc
        raise
    return Claim.from_manifest(uri, data)


def open_index(destination: str) -> str:
    return join(claims_root(destination), OPEN)


def read_heartbeat(uri: str) -> float | None:
    """When the claimer of the claim at ``uri`` last said it is alive; None without a heartbeat."""
    try:
        return float(storage.read_json(join(uri, HEARTBEAT))["at"])
    except (FileNotFoundError, KeyError, ValueError, TypeError):
        return None
    except Exception as exc:
        if _is_missing(exc):
            return None
        raise


def _is_missing(exc: BaseException) -> bool:
    from airflow_mlops.core.io import s3

    return isinstance(exc, Exception) and s3._is_missing(exc)


# -- listing without the data-file filter (markers start with '_') ----------------------------


def _children(folder: str) -> list[str]:
    """Names directly under ``folder`` (files and sub-folders locally; objects and prefixes on S3)."""
    if storage.is_s3(folder):
        from airflow_mlops.core.io import s3

        bucket, prefix = s3.split(folder.rstrip("/") + "/")
        names: set[str] = set()
        paginator = s3.client_for(folder).get_paginator("list_objects_v2")
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
            from airflow_mlops.core.io import s3

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
        from airflow_mlops.core.io import s3

        bucket, key = s3.split(uri)
        try:
            s3.client_for(uri).put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
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


def acks(uri: str) -> list[str]:
    """Ack marker names of the claim at ``uri``."""
    return [name for name in _children(uri) if name.startswith(ACK_PREFIX)]
