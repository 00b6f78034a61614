"""The producer protocol of a landing inbox: when a landed file is complete, and safe to take.

Light (no pandas): the triggerer runs it. A file in the inbox is claimable only when

- its name is not a write in progress or a marker: names starting with ``.``, ``_`` or ``~``
  and names ending with one of ``IN_PROGRESS_SUFFIXES`` (``~``, ``.tmp``, ``.part``,
  ``.crdownload``, ...) are never data. A producer writes under such a name and renames
  the file when it is complete;
- it is a regular file of the inbox itself: a symbolic link, or a name whose real path is
  outside the inbox, is refused (logged once, left where it is, never read, never claimed);
- with ``data.landing.require_marker`` (e.g. ``.done``) its marker ``<name>.done`` exists
  beside it and was written no earlier than the file (a marker older than its file belongs
  to an earlier version); the claimer removes the marker once the file is taken;
- it is settled: two observations at least ``data.landing.settle_seconds`` apart saw the same
  size and modification time (the same ETag, size and LastModified on S3). Observations are
  kept in memory by the process that polls (the triggerer): a restart only delays a claim.

A local file is then taken by a copy, not a rename: a producer that still holds the file
open writes into the inbox's inode, never into the lake. The copy is hashed while it is
written (``sha256:<hex>``, the claim's fingerprint) and kept only when the source's size and
modification time are still those the claim listed, before and after the copy; otherwise
the file goes back to the inbox and must settle again. The lake copy is made read-only. An
S3 object version is immutable; its copy is conditional on the listed ETag and its size is
checked (``core.landing.s3_claims``). What is trained is therefore what the claim fingerprinted.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from airflow_mlops.core.io import storage
from airflow_mlops.core.landing import content as landed_content
from airflow_mlops.core.landing.records import Claim
from airflow_mlops.core.landing.recovery import return_to_inbox

logger = logging.getLogger(__name__)

IN_PROGRESS_PREFIXES = (".", "_", "~")
IN_PROGRESS_SUFFIXES = (
    "~",
    ".tmp",
    ".temp",
    ".part",
    ".partial",
    ".crdownload",
    ".download",
    ".filepart",
    ".inprogress",
    ".uploading",
    ".swp",
    ".lock",
)
COPY_BLOCK_BYTES = 8 << 20
COPYING_PREFIX = ".copying-"  # a lake copy being written: '.'-names are never data


def is_in_progress_name(name: str) -> bool:
    """True for a name a producer writes under before the file is complete (or a marker)."""
    lowered = name.lower()
    return name.startswith(IN_PROGRESS_PREFIXES) or lowered.endswith(IN_PROGRESS_SUFFIXES)


# -- refusing links and files outside the inbox ------------------------------------------------------

_refused: set[tuple[str, str]] = set()
_refused_lock = threading.Lock()


def _printable(text: str, limit: int = 200) -> str:
    """A path for a log line: control characters escaped, at most ``limit`` characters."""
    escaped = text.encode("unicode_escape", errors="backslashreplace").decode("ascii")
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


def refusal(inbox: str, uri: str) -> str | None:
    """Why the local file ``uri`` of ``inbox`` must not be claimed, or None when it may be."""
    path = storage.local_path(uri)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None  # claimed by someone else since the listing: the claim skips it
    if stat.S_ISLNK(info.st_mode):
        return "it is a symbolic link"
    if not stat.S_ISREG(info.st_mode):
        return "it is not a regular file"
    real_inbox = os.path.realpath(storage.local_path(inbox))
    if os.path.dirname(os.path.realpath(path)) != real_inbox:
        return "its real path is outside the inbox"
    return None


def admissible(inbox: str, listed: Iterable[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """The listed files that may be claimed: in-progress names dropped, links refused (logged once)."""
    kept, seen = [], set()
    for uri, version in listed:
        name = uri.rsplit("/", 1)[-1]
        if is_in_progress_name(name):
            continue
        why = None if storage.is_s3(uri) else refusal(inbox, uri)
        if why is None:
            kept.append((uri, version))
            continue
        seen.add((uri, why))
        with _refused_lock:
            first = (uri, why) not in _refused
            _refused.add((uri, why))
        if first:
            logger.warning(
                "landing inbox %s: refusing %s: %s; it is left where it is and never claimed",
                _printable(inbox),
                _printable(name),
                why,
            )
    with _refused_lock:  # a refused name that went away is logged again if it comes back
        gone = {key for key in _refused if key[0].rsplit("/", 1)[0] == inbox.rstrip("/") and key not in seen}
        _refused.difference_update(gone)
    return kept


# -- markers ---------------------------------------------------------------------------------------


def marker_of(uri: str, marker: str) -> str:
    return f"{uri}{marker}"


def _marker_time(uri: str) -> float | None:
    if storage.is_s3(uri):
        from airflow_mlops.core.io import s3

        try:
            return float(int(s3.modified_at(uri)))
        except Exception as exc:
            if s3._is_missing(exc):
                return None
            raise
    try:
        info = os.lstat(storage.local_path(uri))
    except FileNotFoundError:
        return None
    return info.st_mtime if stat.S_ISREG(info.st_mode) else None  # a linked marker does not count


def marker_ready(uri: str, version: dict[str, Any], marker: str) -> bool:
    """True when the marker of ``uri`` exists and was written no earlier than this version of it.

    Whole seconds on S3 (a HEAD gives whole seconds, a listing milliseconds).
    """
    written = _marker_time(marker_of(uri, marker))
    if written is None:
        return False
    landed = float(version["modified_at"])
    return written >= (float(int(landed)) if storage.is_s3(uri) else landed)


def remove_marker(source: str, marker: str | None) -> None:
    """Remove the marker of a taken file (best effort: a marker left behind is older than any new file)."""
    if not marker:
        return
    from airflow_mlops.core.landing.records import _remove_quietly

    try:
        _remove_quietly(marker_of(source, marker))
    except Exception as exc:
        logger.warning("could not remove the marker of %s: %s", _printable(source), exc)


# -- settling --------------------------------------------------------------------------------------


def identity(uri: str, version: dict[str, Any]) -> tuple[Any, ...]:
    """What must not change while a file settles: size and mtime (ns) locally; ETag, size, time on S3."""
    if storage.is_s3(uri):
        return (version.get("etag"), version.get("size"), version["modified_at"])
    info = os.stat(storage.local_path(uri))
    return (info.st_size, info.st_mtime_ns)


class Observations:
    """What earlier polls of this process saw of each inbox file: identity and since when.

    :param clock: seconds, monotonic (a test passes its own).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._seen: dict[str, tuple[tuple[Any, ...], float]] = {}
        self._lock = threading.Lock()

    def settled(
        self, inbox: str, listed: list[tuple[str, dict[str, Any]]], settle_seconds: float
    ) -> list[tuple[str, dict[str, Any]]]:
        """Record this observation of ``listed``; return the files unchanged for ``settle_seconds``.

        Each version gets its ``identity`` (``size`` and ``mtime_ns`` locally) so the claim
        can check the file it takes is the one that settled.
        """
        now = self.clock()
        ready = []
        present = set()
        for uri, version in listed:
            try:
                current = identity(uri, version)
            except FileNotFoundError:
                continue
            present.add(uri)
            if not storage.is_s3(uri):
                version["size"], version["mtime_ns"] = current
            with self._lock:
                before = self._seen.get(uri)
                if before is None or before[0] != current:
                    self._seen[uri] = (current, now)  # new or changed: settling starts again
                    before = self._seen[uri]
            if now - before[1] >= settle_seconds:
                ready.append((uri, version))
        with self._lock:  # forget what left this inbox (claimed, removed)
            for uri in [u for u in self._seen if u.rsplit("/", 1)[0] == inbox.rstrip("/") and u not in present]:
                del self._seen[uri]
        return ready

    def forget(self, uri: str) -> None:
        with self._lock:
            self._seen.pop(uri, None)


OBSERVED = Observations()


# -- taking a local file by a verified copy -----------------------------------------------------------


class ChangedWhileClaimed(RuntimeError):
    """The file changed between the listing and the end of its copy: a producer is still writing it."""


def copying_name(target: str) -> str:
    folder, _, name = target.rpartition("/")
    return f"{folder}/{COPYING_PREFIX}{name}"


def _signature(path: str) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_size, info.st_mtime_ns


def copy_verified(staged: str, target: str, expected: tuple[int, int] | None) -> str:
    """Copy the staged file to ``copying_name(target)`` while hashing it; its ``sha256:`` fingerprint.

    ``expected`` is the (size, mtime_ns) the claim listed; the source must show it before and
    after the copy, and the copy must have that size, else ``ChangedWhileClaimed`` is raised
    and the partial copy removed. The copy is fsynced and made read-only.
    """
    source, tmp = storage.local_path(staged), storage.local_path(copying_name(target))
    before = _signature(source)
    if expected is not None and before != tuple(expected):
        raise ChangedWhileClaimed(f"size/mtime {before} differ from the listed {tuple(expected)}")
    os.makedirs(os.path.dirname(tmp), exist_ok=True)
    discard_copy(target)  # left half-way (or read-only) by a claimer killed during an earlier copy
    digest = hashlib.sha256()
    try:
        with open(source, "rb") as reader, open(tmp, "wb") as writer:
            for block in iter(lambda: reader.read(COPY_BLOCK_BYTES), b""):
                digest.update(block)
                writer.write(block)
            writer.flush()
            os.fsync(writer.fileno())
        after, copied = _signature(source), os.path.getsize(tmp)
        if after != before or copied != before[0]:
            raise ChangedWhileClaimed(f"size/mtime went from {before} to {after} during the copy ({copied} bytes)")
        os.chmod(tmp, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    except BaseException:
        discard_copy(target)
        raise
    return f"sha256:{digest.hexdigest()}"


def discard_copy(target: str) -> None:
    """Remove a copy left half-way for ``target`` (a claimer killed during the copy)."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(storage.local_path(copying_name(target)))


def take_local(record: Claim, planned: dict[str, Any]) -> str | None:
    """Copy one staged local file to the lake (or the claim's duplicates); where it is, or None.

    A copy, not a rename: a producer still holding the file open writes into the staged
    inode, never into the lake; the copy is kept only if the file did not change (see
    ``copy_verified``), else the file goes back to the inbox. Idempotent, so
    recovery runs it too: a file already copied stays where it is.
    """
    staged = planned["staged"]
    for copy in (planned["target"], planned["kept_at"]):
        if storage.exists(copy):
            _remove_staged(staged)  # killed after the copy was placed: the verified copy counts
            return str(copy)
    if not os.path.exists(storage.local_path(staged)):
        discard_copy(planned["target"])
        return None  # never taken: still in the inbox, or claimed by someone else
    try:
        planned["fingerprint"] = copy_verified(staged, planned["target"], planned.get("listed"))
    except ChangedWhileClaimed as exc:
        back = return_to_inbox(staged, planned["source"])
        logger.warning(
            "claim %s: %s changed while it was claimed (%s), so a producer is still writing it: returned to "
            "the inbox as %s; it is claimed once it settles",
            record.claim_id,
            planned["source"],
            exc,
            back,
        )
        return None
    where = landed_content.place(record, planned)
    storage.move(copying_name(planned["target"]), where)
    _remove_staged(staged)
    return where


def _remove_staged(staged: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(storage.local_path(staged))
