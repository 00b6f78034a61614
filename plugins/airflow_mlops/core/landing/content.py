"""File-level duplicates at claim time: content delivered once is never delivered again.

A file landed again (the same bytes, under its old name or a new one) is recognised when it
is claimed, by a content fingerprint:

- a local file: ``sha256:<hex>`` of its bytes, read once by the claimer (at about the disk's
  read speed: measured 1.0-1.1 GB/s on the 2-core development machine, so a 5 GB file adds
  about 5 s to its claim);
- an S3 object: ``s3-etag:<ETag>:<size>`` from the inbox listing, so no byte is read. An ETag
  is the MD5 of a single-part upload, so the same bytes uploaded the same way give the same
  fingerprint; the same bytes uploaded in another number of parts do not, and are then
  claimed as a new file (the row-level ``cleaning.deduplicate`` still drops their rows).

Each delivered file's fingerprint is recorded twice: in its claim's manifest (``files[].
fingerprint``) and in an index entry ``<claims>/_fingerprints/<sha256 of the fingerprint>``
holding the claim id and the lake file. The entry is created exclusively (a hard link
locally, ``If-None-Match: *`` on S3), so of two claimers racing with the same content one
wins. A file whose entry is held by another claim is a duplicate: it is moved to
``<claims>/<claim id>/duplicates/<name>`` (out of the lake: never trained on), listed in the
claim's ``duplicates`` and logged. An entry whose lake file is gone (quarantined, removed by
hand) and whose claim is no longer claiming is stale: the new file takes it over and is
claimed, so content set aside once can be landed again on purpose.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from airflow_mlops.core.io import storage
from airflow_mlops.core.landing.records import (
    Claim,
    _create_exclusively,
    _is_missing,
    _remove_quietly,
    claim_uri,
    claims_root,
    load_claim,
)
from airflow_mlops.layout import join, safe_segment

logger = logging.getLogger(__name__)

FINGERPRINTS = "_fingerprints"
HASH_BLOCK_BYTES = 8 << 20


def local_fingerprint(uri: str) -> str:
    """``sha256:<hex>`` of a local file's bytes (read once, in 8 MiB blocks)."""
    digest = hashlib.sha256()
    with open(storage.local_path(uri), "rb") as handle:
        for block in iter(lambda: handle.read(HASH_BLOCK_BYTES), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def s3_fingerprint(etag: str, size: int) -> str:
    """The fingerprint of an S3 object version from its listing: ETag and size, no read."""
    return f"s3-etag:{etag.strip(chr(34))}:{int(size)}"


def entry_uri(destination: str, fingerprint: str) -> str:
    return join(claims_root(destination), FINGERPRINTS, hashlib.sha256(fingerprint.encode()).hexdigest())


def _read_entry(uri: str) -> dict[str, Any] | None:
    try:
        return dict(storage.read_json(uri))
    except FileNotFoundError:
        return None
    except ValueError:
        return {}  # unreadable: treated as stale
    except Exception as exc:
        if _is_missing(exc):
            return None
        raise


def _holds(entry: dict[str, Any], destination: str) -> bool:
    """True while an entry's file counts as delivered: in the lake, or its claim still claiming it."""
    target = entry.get("target")
    if not target:
        return False
    if storage.exists(str(target)):
        return True
    try:
        record = load_claim(claim_uri(destination, safe_segment(str(entry.get("claim_id", "")))))
    except (ValueError, KeyError, OSError):
        return False
    return record.state == "claiming" and any(p.get("target") == target for p in record.files)


def register(destination: str, fingerprint: str, claim_id: str, target: str) -> str | None:
    """Record ``target`` as the one lake copy of this content; None if it is new (or already this
    claim's), else the lake URI of the copy delivered before (the file is a duplicate)."""
    uri = entry_uri(destination, fingerprint)
    data = json.dumps({"fingerprint": fingerprint, "claim_id": claim_id, "target": target}, sort_keys=True)
    for _ in range(3):  # an entry removed between our attempt and our read: try again
        if _create_exclusively(uri, data.encode()):
            return None
        entry = _read_entry(uri)
        if entry is None:
            continue
        if entry.get("claim_id") == claim_id:
            return None if entry.get("target") == target else str(entry["target"])  # two equal files of one claim
        if _holds(entry, destination):
            return str(entry["target"])
        logger.info(
            "content of %s was delivered before as %s, which is gone: claimed again", target, entry.get("target")
        )
        storage.write_bytes(data.encode(), uri)  # stale: this copy takes it over
        return None
    storage.write_bytes(data.encode(), uri)
    return None


def release(destination: str, fingerprint: str | None, claim_id: str) -> None:
    """Remove this claim's entry for ``fingerprint`` (its file went back to the inbox)."""
    if not fingerprint:
        return
    uri = entry_uri(destination, fingerprint)
    entry = _read_entry(uri)
    if entry is not None and entry.get("claim_id") == claim_id:
        _remove_quietly(uri)


def place(record: Claim, planned: dict[str, Any]) -> str:
    """Where one file of ``record`` goes: its lake target, or the claim's duplicates folder when
    its content (``planned["fingerprint"]``) was delivered before (``same_as`` is then set)."""
    earlier = register(record.destination, planned["fingerprint"], record.claim_id, planned["target"])
    if earlier is None:
        return str(planned["target"])
    planned["same_as"] = earlier
    return str(planned["kept_at"])


def note_duplicate(record: Claim, planned: dict[str, Any]) -> None:
    """Record and log one file of ``record`` set aside as a copy of content delivered before."""
    same_as = planned.get("same_as")
    if not same_as and planned.get("fingerprint"):  # recovered after the move: ask the index
        same_as = (_read_entry(entry_uri(record.destination, planned["fingerprint"])) or {}).get("target", "")
    record.duplicates.append({"source": planned["source"], "kept_at": planned["kept_at"], "same_as": str(same_as)})
    logger.warning(
        "claim %s: %s has the same content as %s, delivered before: not delivered again (kept at %s)",
        record.claim_id,
        planned["source"],
        same_as or "an earlier file",
        planned["kept_at"],
    )
