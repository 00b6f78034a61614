"""Claims whose claimer died before delivering them: tell them apart from claims in progress.

A claim is written (state ``claiming``) before its files move, and delivered (``claimed``,
first delivery recorded) once they have. A claimer killed in between (the triggerer killed,
the disk full) leaves a claim nobody delivers: local files renamed to hidden
``.claiming-<claim id>-<name>`` names in the inbox, or S3 objects behind their locks, some
maybe already in the lake. Such a claim needs no redelivery wait: the next scan of the open
claims (``core.landing.inbox.redeliver_due``, which the trigger runs when it starts, after any
error and every ``scan_interval``) finishes its moves or returns its files to the inbox, and
delivers what reached the lake.

The claimer is gone, and its claim may be recovered, when:

- it ran in this process and its ``claim()`` call has returned or raised (the call keeps
  the claim in a process-wide set while it runs);
- it ran on this host and its process no longer exists (same pid with another start time
  counts as gone: pids are reused);
- its last sign of life (the claim's creation, or the ``_heartbeat`` a claim call rewrites
  every ``HEARTBEAT_SECONDS`` while it runs) is older than ``LEASE_SECONDS``.

Recovering a claim that was in fact alive (a host whose clock is off by more than the
lease) is safe: every step is idempotent (a file whose lake copy exists is claimed, a copy
never replaces a file) and a claim delivered twice is taken once (acks are per claim).

Until it is delivered, no window reads a file of an undelivered claim (``undelivered_targets``):
the claim may still give the file back to the inbox. ``stranded`` lists such claims, with
their files and age, for the logs and the plugin's page.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from airflow_mlops.core.io import storage
from airflow_mlops.core.landing.records import (
    HEARTBEAT,
    Claim,
    _children,
    claim_uri,
    load_claim,
    open_index,
    read_heartbeat,
)
from airflow_mlops.layout import join

logger = logging.getLogger(__name__)

LEASE_SECONDS = 120.0
HEARTBEAT_SECONDS = 20.0

_active: set[str] = set()
_active_lock = threading.Lock()


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (``/proc/<pid>/stat`` field 22); None when unknown or gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def claimer_identity() -> dict[str, Any]:
    """Who claims: recorded in the manifest so that another poll can tell whether it is alive."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _process_start(os.getpid())}


@contextlib.contextmanager
def claiming(record: Claim) -> Iterator[None]:
    """Mark ``record`` as being claimed by this call; rewrite its heartbeat while the call runs."""
    with _active_lock:
        _active.add(record.claim_id)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            with contextlib.suppress(Exception):  # a missed beat only makes the lease shorter
                storage.write_json({"at": time.time(), **record.claimer}, join(record.uri, HEARTBEAT))

    # In this call's context: the heartbeat goes to the claim's store (``core.io.s3.using``).
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(beat,), name=f"claim-heartbeat-{record.claim_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
        with _active_lock:
            _active.discard(record.claim_id)


def claimer_gone(record: Claim, now: float | None = None) -> str | None:
    """Why the claimer of a ``claiming`` claim is gone (recover it), or None while it may be at work."""
    with _active_lock:
        if record.claim_id in _active:
            return None
    who = record.claimer
    if who.get("host") == socket.gethostname() and who.get("pid"):
        pid = int(who["pid"])
        started = _process_start(pid)
        if pid == os.getpid() and started == who.get("started"):
            return "its claim call in this process ended before delivering it"
        if os.path.isdir("/proc") and (started is None or (who.get("started") and started != who["started"])):
            return f"its claimer (pid {pid} on this host) is gone"
    now = time.time() if now is None else now
    last = record.created_at
    if now - last > LEASE_SECONDS:
        last = max(last, read_heartbeat(record.uri) or 0.0)
    if now - last > LEASE_SECONDS:
        return f"its claimer gave no sign of life for {now - last:.0f} s (lease {LEASE_SECONDS:.0f} s)"
    return None


def _open_records(destination: str) -> Iterator[Claim]:
    for claim_id in _children(open_index(destination)):
        try:
            yield load_claim(claim_uri(destination, claim_id))
        except (FileNotFoundError, ValueError, KeyError):
            continue


def undelivered_targets(destination: str) -> set[str]:
    """Lake URIs of files of claims not delivered yet: a window must not read them."""
    return {p["target"] for record in _open_records(destination) if record.state == "claiming" for p in record.files}


def stranded(destination: str, now: float | None = None) -> list[dict[str, Any]]:
    """Open claims that hold files nobody is processing yet: undelivered, or delivered and unacknowledged.

    One entry per claim: ``claim_id``, ``state`` (``claiming``: never delivered; ``claimed``:
    delivered, no ack yet), ``age_seconds``, ``deliveries``, ``files`` (names as landed) and,
    for undelivered ones, ``claimer`` (``alive`` or why it is gone).
    """
    from airflow_mlops.core.landing.records import acks

    now = time.time() if now is None else now
    out = []
    for record in _open_records(destination):
        if record.state == "claiming":
            gone = claimer_gone(record, now)
            extra = {"claimer": gone or "alive"}
        elif record.state == "claimed" and not acks(record.uri):
            extra = {}
        else:
            continue
        out.append(
            {
                "claim_id": record.claim_id,
                "state": record.state,
                "age_seconds": round(now - record.created_at, 1),
                "deliveries": len(record.deliveries),
                "files": record.planned_names() if record.state == "claiming" else _names(record.claimed),
                **extra,
            }
        )
    return out


def _names(uris: list[str]) -> list[str]:
    return [uri.rsplit("/", 1)[-1] for uri in uris]


def return_to_inbox(staged: str, source: str) -> str:
    """Give a staged local file back to the inbox under its name (or ``<claim id>-<name>`` if taken).

    A hard link never replaces a file that landed under the same name meanwhile.
    """
    path, wanted = storage.local_path(staged), storage.local_path(source)
    folder, name = os.path.split(wanted)
    claim_id = os.path.basename(path).removeprefix(".claiming-")[: -len(name) - 1]
    for candidate in (wanted, os.path.join(folder, f"{claim_id}-{name}")):
        try:
            os.link(path, candidate)
        except FileExistsError:
            continue
        except OSError:  # no hard links on this filesystem
            if os.path.exists(candidate):
                continue
            os.rename(path, candidate)
            return candidate
        os.remove(path)
        return candidate
    raise FileExistsError(f"cannot return {staged} to the inbox: {wanted} and its alternative exist")
