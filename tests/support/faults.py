"""Fault injection for retry tests: kill a process at one exact client call, or make the call fail.

``run_killed_at`` runs a function in a fresh process (``spawn``) in which one method, say
``MlflowClient.set_registered_model_alias``, is wrapped so that the process SIGKILLs itself
right after (or before) the Nth matching call: what a task killed by the OOM killer or a
lost worker leaves behind. The parent then retries the step in-process and checks the
store. ``failing_at`` (in-process) makes the matching call raise instead: an outage.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

MLFLOW_CLIENT = "mlflow.tracking.client:MlflowClient"


@dataclass(frozen=True)
class At:
    """A call to ``method`` of ``target`` ("module:Class"), optionally only with ``arg`` among its
    arguments, counted from 1; ``when`` is "after" (it returned) or "before" (never ran)."""

    method: str
    target: str = MLFLOW_CLIENT
    arg: Any = None
    nth: int = 1
    when: str = "after"


def _owner(target: str) -> Any:
    module, _, attribute = target.partition(":")
    owner: Any = importlib.import_module(module)
    for part in attribute.split("."):
        owner = getattr(owner, part)
    return owner


def _wrap(at: At, fault: Callable[[], None]) -> tuple[Any, Callable[..., Any]]:
    owner = _owner(at.target)
    original = getattr(owner, at.method)
    seen = 0

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal seen
        matches = at.arg is None or at.arg in args or at.arg in kwargs.values()
        if matches:
            seen += 1
        if matches and seen == at.nth and at.when == "before":
            fault()
        result = original(*args, **kwargs)
        if matches and seen == at.nth and at.when == "after":
            fault()
        return result

    return owner, wrapper


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _child(at: At, function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    owner, wrapper = _wrap(at, _kill)
    setattr(owner, at.method, wrapper)
    function(*args, **kwargs)


def run_killed_at(at: At, function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run ``function(*args, **kwargs)`` in a new process killed at ``at``; fail if it was not.

    ``function`` and its arguments must pickle (a module-level function, plain values, a spec).
    The child inherits the environment (e.g. ``AIRFLOW_MLOPS_HOME`` set by ``monkeypatch``).
    """
    process = multiprocessing.get_context("spawn").Process(target=_child, args=(at, function, args, kwargs))
    process.start()
    process.join(timeout=300)
    if process.is_alive():
        process.kill()
        raise AssertionError(f"{function.__name__} did not reach {at} within 300 s")
    if process.exitcode != -signal.SIGKILL:
        raise AssertionError(f"{function.__name__} was not killed at {at}: exit code {process.exitcode}")


class Outage(ConnectionError):
    """The store went away in the middle of a step."""


@contextlib.contextmanager
def failing_at(at: At, monkeypatch: Any) -> Iterator[None]:
    """In this process, the call at ``at`` raises ``Outage`` (before it runs, or after it ran)."""

    def fail() -> None:
        raise Outage(f"injected outage at {at.method}")

    owner, wrapper = _wrap(at, fail)
    with monkeypatch.context() as patch:
        patch.setattr(owner, at.method, wrapper)
        yield
