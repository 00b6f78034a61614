"""Process bookkeeping of the embedded stack: who we started, whether it still runs, how to stop it.

Every service of the stack is started as the leader of a new session
(``start_new_session=True``), so its process group and session id equal its pid.
Airflow moves each task into a process group of its own but keeps the session, so
"everything a service started" is: its process group, plus every process of its
session, plus its descendants found before the first signal.

A recorded pid is only trusted while the process's start time (``/proc/<pid>/stat``)
matches the one recorded at start: a pid the kernel handed to some other program
after ours exited is never signalled. Without ``/proc`` (macOS) the check is skipped
and only the process groups are signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessRecord:
    """A service process the stack started: name, pid (= its process group and session)."""

    name: str
    pid: int
    start_time: int | None = None

    @classmethod
    def of(cls, name: str, pid: int) -> ProcessRecord:
        return cls(name, pid, start_time(pid))

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "pid": self.pid, "start_time": self.start_time}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ProcessRecord:
        started = data.get("start_time")
        return cls(str(data["name"]), int(str(data["pid"])), int(str(started)) if started is not None else None)


def _stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name, or None when there is no such process."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()  # the name may hold spaces and parentheses


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (None without /proc or process)."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def alive(record: ProcessRecord) -> bool:
    """True while the recorded process runs (not a zombie) and is still the one we started."""
    if PROC.is_dir():
        fields = _stat(record.pid)
        if fields is None or fields[0] in ("Z", "X"):
            return False
        return record.start_time is None or int(fields[19]) == record.start_time
    try:
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _processes() -> Iterable[tuple[int, int, int, str]]:
    """(pid, parent pid, session id, state) of every process visible in /proc."""
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None:
                yield int(entry.name), int(fields[1]), int(fields[3]), fields[0]


def members(records: Iterable[ProcessRecord]) -> set[int]:
    """Live pids belonging to the recorded services: sessions, descendants, the leaders themselves."""
    if not PROC.is_dir():
        return {r.pid for r in records if alive(r)}
    table = [p for p in _processes() if p[3] not in ("Z", "X")]
    leaders = set()
    for record in records:
        fields = _stat(record.pid)
        if fields is None or record.start_time is None or int(fields[19]) == record.start_time:
            # Ours, or gone with its pid unused (what is left of its session is still ours).
            leaders.add(record.pid)
        # else: the pid now belongs to another program; leave it and its session alone.
    found = {pid for pid, _, sid, _ in table if sid in leaders}
    children: dict[int, list[int]] = {}
    for pid, ppid, _, _ in table:
        children.setdefault(ppid, []).append(pid)
    stack = list(found)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def _signal(pids: Iterable[int], groups: Iterable[int], sig: signal.Signals) -> None:
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _running(pids: Iterable[int]) -> set[int]:
    if not PROC.is_dir():
        out = set()
        for pid in pids:
            try:
                os.kill(pid, 0)
                out.add(pid)
            except ProcessLookupError:
                pass
            except PermissionError:
                out.add(pid)
        return out
    return {pid for pid in pids if (fields := _stat(pid)) is not None and fields[0] not in ("Z", "X")}


def terminate(records: list[ProcessRecord], timeout: float = 30.0) -> set[int]:
    """SIGTERM what the records started, wait up to ``timeout``, SIGKILL the rest.

    Returns the pids that were running when it began (empty when nothing was: safe to
    call twice). Pids that belong to other programs are never signalled.
    """
    pids = members(records)
    if not pids:
        return set()
    groups = [r.pid for r in records if alive(r)]
    _signal(pids, groups, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _running(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _running(pids) | (members(records) if PROC.is_dir() else set())
    if left:
        _signal(left, [g for g in groups if g in left], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _running(left) and time.monotonic() < deadline:
            time.sleep(0.1)
    return pids


def port_open(host: str, port: int) -> bool:
    """True when something accepts connections on ``host:port``."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` set in this process's environment inside the block; every name restored (or
    removed again) on exit."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
