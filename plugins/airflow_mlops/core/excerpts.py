"""Short, escaped excerpts of file content for error messages, logs and quarantine reports.

A bad file can hold anything: megabytes on one line, terminal escape sequences, a password
pasted into a cell. What the pipeline says about it quotes at most ``LIMIT`` characters of
any one piece of content, ``repr``-escaped, so a message stays one readable line and never
replays the file.
"""

from __future__ import annotations

from typing import Any

LIMIT = 80


def excerpt(value: Any, limit: int = LIMIT) -> str:
    """``repr`` of the first ``limit`` characters of ``value`` (text, bytes or anything), marked when cut."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "backslashreplace")
    text = value if isinstance(value, str) else str(value)
    cut = len(text) > limit
    return repr(text[:limit]) + (f"... ({len(text):,} characters)" if cut else "")


def short(value: Any, limit: int = 40) -> Any:
    """A value as shown in a list of examples: text cut to ``limit`` characters and escaped of
    control characters (``repr`` of the list escapes the rest); other values as they are."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "backslashreplace")
    if not isinstance(value, str):
        return value
    text = value[:limit].encode("unicode_escape").decode("ascii") if not value[:limit].isprintable() else value[:limit]
    return text + "..." if len(value) > limit else text


def bounded(report: Any, limit: int = LIMIT) -> Any:
    """``report`` (JSON-like) with every string longer than ``limit`` cut and escaped: what a
    quarantine report may hold of the data (observed values, unexpected samples, messages)."""
    if isinstance(report, dict):
        return {key: bounded(value, limit) for key, value in report.items()}
    if isinstance(report, list | tuple):
        return [bounded(value, limit) for value in report]
    if isinstance(report, str) and (len(report) > limit or not report.isprintable()):
        return short(report, limit)
    return report
