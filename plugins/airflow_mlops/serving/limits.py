"""Limits a request body meets before it becomes model inputs: rows counted before decoding,
numbers within float32.

Rows. A body of ``n`` bytes holds no JSON list of more than ``n // 2`` items (each item
takes a byte and a comma), so a body under ``2 * max_rows`` bytes cannot exceed the row
limit and goes straight to the decoder. A larger one is first counted: a census decoder
reads it with every value skipped (no Python object made for a cell or a field) and one
empty struct per row whose ``__post_init__`` stops the decode at row ``max_rows + 1``. A
16 MiB body of millions of empty rows is then refused after 10,001 of them, in about a
millisecond, instead of being decoded whole (about 1.2 s and 350 MB per decoded tree,
measured here). A column of an ``inputs`` body (a list of scalars, not of structs) comes
out of the census as raw JSON; one with fewer commas than ``max_rows`` cannot be too long,
and any other is read into an array-like struct of ``max_rows + 1`` optional fields: the
decoder fills the fields with the first items and skips the rest, so a column is too long
exactly when its last field is filled (16 MiB of zeros in one column: 20-70 ms here,
against ~330 ms to decode it).

Numbers. ONNX Runtime takes numbers as float32: a JSON number beyond float32's range
(|x| > 3.4028235e38, e.g. 1e39) would reach the model as infinity and come back as a
meaningless score or a null one. ``out_of_range`` finds such values (inputs and derived
features) with one vectorised comparison per column, so the request is refused naming the
field and the row.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np

FLOAT32_MAX = float(np.finfo(np.float32).max)
TOO_MANY_ROWS = "more than the allowed rows"  # the census's refusal; parse_body turns it into a 422

_remaining = threading.local()  # rows the census still accepts, per decoding thread


def _count_row(_row: Any) -> None:
    _remaining.rows -= 1
    if _remaining.rows < 0:
        raise ValueError(TOO_MANY_ROWS)


class Census:
    """Counts the rows of a body without decoding its values (one per schema, thread-safe)."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        namespace = {"__post_init__": _count_row}
        record = msgspec.defstruct("RecordTick", [], namespace=namespace, gc=False)
        line = msgspec.defstruct("LineTick", [], array_like=True, namespace=namespace, gc=False)
        split = msgspec.defstruct("SplitCensus", [("data", list[line] | None, None)])  # type: ignore[valid-type]
        body = msgspec.defstruct(
            "BodyCensus",
            [("instances", list[record] | None, None), ("dataframe_records", list[record] | None, None),  # type: ignore[valid-type]
             ("dataframe_split", split | None, None), ("inputs", dict[str, msgspec.Raw] | None, None)],  # type: ignore[valid-type]
        )  # fmt: skip
        self._body = msgspec.json.Decoder(body)

    @functools.cached_property
    def _column(self) -> msgspec.json.Decoder[Any]:
        """An array-like struct of ``max_rows + 1`` optional fields (built at the first column
        that needs it: ~90 ms for 10,000 rows, and more than linearly longer for more)."""
        fields = [(f"v{i}", Any, msgspec.UNSET) for i in range(self.max_rows + 1)]
        return msgspec.json.Decoder(msgspec.defstruct("ColumnCensus", fields, array_like=True, gc=False))

    def refusal(self, body: bytes) -> str | None:
        """None when the rows are within ``max_rows``, else why not, as msgspec words it.

        The message is the decoder's own (``TOO_MANY_ROWS - at `$.instances[10000]``` or a
        shape problem such as a row that is not an object); malformed JSON is left to the
        typed decoder, which names it. An ``inputs`` column with fewer commas than
        ``max_rows`` cannot be too long and is not read further.
        """
        _remaining.rows = self.max_rows
        try:
            census = self._body.decode(body)
        except msgspec.ValidationError as exc:
            return str(exc)
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
            return None
        last = f"v{self.max_rows}"
        for name, raw in (getattr(census, "inputs", None) or {}).items():
            if np.count_nonzero(np.frombuffer(raw, dtype=np.uint8) == ord(",")) < self.max_rows:
                continue
            try:
                column = self._column.decode(raw)
            except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
                return None  # not a list of scalars: the typed decoder says what it is
            if getattr(column, last) is not msgspec.UNSET:
                return f"{TOO_MANY_ROWS} - at `$.inputs.{name}`"
        return None


def may_exceed(body: bytes, max_rows: int) -> bool:
    """Whether ``body`` is large enough to hold a list of more than ``max_rows`` items."""
    return len(body) >= 2 * max_rows


def out_of_range(
    columns: dict[str, np.ndarray], names: tuple[str, ...], locate: Callable[[int, str], list[Any]]
) -> list[tuple[list[Any], str]]:
    """(place, message) of the first values beyond float32 range, per column of ``names``.

    NaN (a missing value) is in range: comparisons with NaN are false.
    """
    problems = []
    for name in names:
        values = columns[name]
        bad = np.flatnonzero(np.abs(values) > FLOAT32_MAX)
        if bad.size:
            first = int(bad[0])
            more = f" ({bad.size} values in all)" if bad.size > 1 else ""
            problems.append(
                (locate(first, name), f"{values[first]:g} is beyond the model's float32 range (|x| <= 3.4e38){more}")
            )
    return problems
