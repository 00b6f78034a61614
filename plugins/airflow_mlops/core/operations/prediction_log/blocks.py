"""The prediction log's in-memory blocks: what requests append, kept cheap to append and to write."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

SEPARATOR = "\x1f"  # ASCII unit separator: joins one request's text values into one string


def joined(values: Any, rows: int) -> str:
    """One request's text values as one string (a C-level join, no per-value Python work)."""
    if values is None:
        return SEPARATOR * (rows - 1)  # empty values: null ids
    try:
        text = SEPARATOR.join(values)
    except TypeError:  # ids sent as numbers, or missing
        text = SEPARATOR.join("" if v is None else str(v) for v in values)
    if text.count(SEPARATOR) != rows - 1:  # a value holds the separator itself: replace it
        text = SEPARATOR.join(("" if v is None else str(v)).replace(SEPARATOR, "\ufffd") for v in values)
    return text


class Block:
    """What requests append, kept so that both appending and writing stay cheap.

    Numbers go into preallocated arrays (slice copies). Text (categories, ids) is kept as
    one joined string per request and column; request id, version and time once per
    request. Writing turns these into Arrow columns in Arrow's own code (split, repeat),
    so the writer thread holds the GIL, which the event loop needs, per request and not
    per row.
    """

    def __init__(self, capacity: int, numeric: list[str], categorical: list[str]) -> None:
        self.capacity = capacity
        self.used = 0
        self.request_ids: list[str] = []
        self.client_ids: list[str] = []  # "" for none
        self.versions: list[str] = []
        self.times: list[float] = []
        self.counts: list[int] = []
        self.ids: list[str] = []
        self.numbers = {c: np.empty(capacity, dtype=np.float64) for c in numeric}
        self.text: dict[str, list[str]] = {c: [] for c in categorical}
        self.predictions: np.ndarray | None = None
        self.scores: np.ndarray | None = None
        # Per request of a multiclass model: (first row, probabilities (rows x classes), class labels).
        self.probabilities: list[tuple[int, np.ndarray, tuple[str, ...]]] = []

    def append(
        self,
        request_id: str,
        logged_at: float,
        model_version: str,
        features: dict[str, np.ndarray],
        predictions: np.ndarray,
        scores: np.ndarray | None,
        ids: list[Any] | None,
        probabilities: np.ndarray | None = None,
        classes: tuple[str, ...] | None = None,
        client_request_id: str | None = None,
    ) -> None:
        start, rows = self.used, len(predictions)
        stop = start + rows
        self.request_ids.append(request_id)
        self.client_ids.append(client_request_id or "")
        self.versions.append(model_version)
        self.times.append(logged_at)
        self.counts.append(rows)
        self.ids.append(joined(ids, rows))
        for name, column in self.numbers.items():
            column[start:stop] = features[name]
        for name, segments in self.text.items():
            segments.append(joined(features[name].tolist(), rows))
        if self.predictions is None:
            self.predictions = np.empty(self.capacity, dtype=predictions.dtype)
        elif not np.can_cast(predictions.dtype, self.predictions.dtype, casting="same_kind"):
            self.predictions = self.predictions.astype(object)  # a new champion with another label type
        self.predictions[start:stop] = predictions
        if scores is not None:
            if self.scores is None:
                self.scores = np.full(self.capacity, np.nan)
            self.scores[start:stop] = scores
        if probabilities is not None:
            labels = classes or tuple(map(str, range(probabilities.shape[1])))
            self.probabilities.append((start, probabilities, labels))
        self.used = stop

    def probability_map(self) -> pa.Array:
        return probability_map(self.probabilities, self.used)

    def logged_at(self) -> np.ndarray:
        return np.repeat(np.asarray(self.times, dtype=np.float64), self.counts)


def probability_map(parts: list[tuple[int, np.ndarray, tuple[str, ...]]], rows: int) -> pa.Array:
    """The log's ``probabilities`` column (``map<string, double>``) of ``rows`` rows, from
    (first row, probabilities (rows x classes), class labels as text) parts; rows no part
    covers are null. The serving log and batch scoring both build it here."""
    lengths = np.zeros(rows, dtype=np.int32)
    keys: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for start, probabilities, labels in parts:
        count, width = probabilities.shape
        lengths[start : start + count] = width
        keys.append(np.tile(np.asarray(labels, dtype=object), count))
        values.append(np.asarray(probabilities, dtype=np.float64).reshape(-1))
    offsets = np.zeros(rows + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.MapArray.from_arrays(
        pa.array(offsets),
        pa.array(np.concatenate(keys), type=pa.string()),
        pa.array(np.concatenate(values)),
        mask=pa.array(lengths == 0),
    )


def constant_column(value: str, rows: int) -> pa.Array:
    """``rows`` copies of one string, built from two buffers (``pa.repeat`` takes ~17 us per row)."""
    return repeated_column([value], np.array([rows], dtype=np.int64))


def repeated_column(values: list[str], counts: np.ndarray) -> pa.Array:
    """``values[i]`` repeated ``counts[i]`` times, as an Arrow string array built from its buffers."""
    encoded = [v.encode("utf-8") for v in values]
    lengths = np.repeat(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), counts)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = b"".join(v * int(c) for v, c in zip(encoded, counts, strict=True))
    array = pa.Array.from_buffers(pa.large_string(), len(lengths), [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    return array.cast(pa.string()) if len(data) < 2**31 else array
