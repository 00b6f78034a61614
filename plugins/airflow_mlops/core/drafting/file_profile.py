"""Read one data file for ``airflow-mlops init``: infer column types, profile, count rows.

The file is read with the project's own readers (``core.data.sources.read_chunks``, the same
format inference and ``s3://`` download as ingestion), so what ``init`` sees is what the
training DAG will see. Types are inferred from the first chunk (``sample_rows``) and every
later chunk is cast with ``core.data.ingest.cast_declared``, the cast ingestion applies; a later
value that does not fit (text in a column typed numeric) demotes that column to text and
the scan starts again. At most ``profile_rows`` rows are profiled (``core.data.profiling``);
the rows beyond are only counted (Parquet metadata, or a one-column CSV parse).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlops.core.data.ingest import cast_declared
from airflow_mlops.core.data.profiling import TableProfiler
from airflow_mlops.core.data.sources import IngestError, format_of, read_chunks
from airflow_mlops.core.io import storage
from airflow_mlops.spec import CsvOptions, SourceSpec

SAMPLE_ROWS = 200_000
PROFILE_ROWS = 1_000_000
LABEL_VALUES_CAP = 1_000  # distinct label values counted; more means a continuous label
_LEADING_ZERO = re.compile(r"^[+-]?0\d")
_DATE_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")
_ID_NAME = re.compile(r"(^|[_\s.\-/])(id|key|uuid|guid)$|[a-z0-9](Id|ID|Key)$", re.IGNORECASE)


class DraftError(ValueError):
    """Input ``init`` cannot draft a spec from; the message names the file/column and what to do."""


@dataclass
class ColumnScan:
    """One column as ``init`` sees it: the inferred type, its profile, and exact facts."""

    name: str
    kind: str  # int, float, bool, string, datetime, empty, infinite
    profile: dict[str, Any] = field(default_factory=dict)
    unique: bool = False  # exact: every value present and distinct (checked for id-like names only)

    @property
    def declared(self) -> str:
        return {"int": "int", "float": "float", "bool": "bool", "datetime": "datetime"}.get(self.kind, "string")

    @property
    def present(self) -> int:
        return int(self.profile.get("count", 0)) - int(self.profile.get("nulls", 0))


@dataclass
class TableScan:
    """What ``scan`` learned about a file."""

    uri: str
    fmt: str
    delimiter: str
    rows: int
    profiled_rows: int
    columns: dict[str, ColumnScan]
    label_counts: Counter[Any] | None  # None: more than LABEL_VALUES_CAP distinct values
    label_fractional: bool = False  # a numeric label with non-integer values


def looks_like_id(name: str) -> bool:
    """A name such as ``id``, ``customer_id``, ``order key``, ``userId``."""
    return bool(_ID_NAME.search(name.strip()))


def pipeline_name(uri: str) -> str:
    """A pipeline name from the file name: ``Sales Data 2024.csv`` -> ``sales_data_2024``."""
    stem = uri.rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".gz", ".parquet", ".pq", ".csv", ".tsv", ".jsonl", ".ndjson", ".json"):
        stem = stem.removesuffix(suffix) if stem.lower().endswith(suffix) else stem
    name = re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_")
    if name and not name[0].isalpha():
        name = f"p_{name}"
    return name[:63].rstrip("_")


def infer_kind(series: pd.Series) -> str:
    """The type of a column from its values: int, float, bool, string, datetime, empty or infinite."""
    values = series.dropna()
    if values.empty:
        return "empty"
    if pd.api.types.is_bool_dtype(values):
        return "bool"
    if pd.api.types.is_datetime64_any_dtype(values):
        return "datetime"
    if pd.api.types.is_numeric_dtype(values):
        numbers = values.to_numpy(dtype="float64")
        if not np.isfinite(numbers).all():
            return "infinite"
        return "int" if pd.api.types.is_integer_dtype(values) or bool((numbers == np.floor(numbers)).all()) else "float"
    text = values.astype(str).str.strip()
    lowered = text.str.lower()
    if lowered.isin(["true", "false"]).all():
        return "bool"
    floats = to_float(text)
    if floats is not None:
        if text.str.match(_LEADING_ZERO).any():
            return "string"  # codes such as zip codes: the zeros matter
        if not np.isfinite(floats).all():
            return "infinite"
        return "int" if bool((floats == np.floor(floats)).all()) else "float"
    if text.str.match(_DATE_LIKE).all():
        parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
        if parsed.notna().all():
            return "datetime"
    return "string"


def to_float(values: pd.Series) -> np.ndarray | None:
    """The values as float64 when every present one is a number, else None.

    pyarrow parses plain numbers fast; what it refuses goes to ``pd.to_numeric`` (the parser
    ingestion uses), after a look at the first values so a text column fails fast.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    def parse(part: pd.Series) -> np.ndarray | None:
        text = pa.array(part, type=pa.string())
        for trim in (False, True):  # trim only when needed: it costs
            try:
                return np.asarray(
                    pc.cast(pc.utf8_trim_whitespace(text) if trim else text, pa.float64()), dtype="float64"
                )
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                continue
        return None

    head = values.head(1000)
    if (
        len(values) > len(head)
        and parse(head) is None
        and pd.to_numeric(head, errors="coerce").isna().sum() > head.isna().sum()
    ):
        return None  # text in the first values: not a number column
    parsed = parse(values)
    if parsed is not None:
        return parsed
    numbers = pd.to_numeric(values, errors="coerce")
    if int(numbers.isna().sum()) > int(values.isna().sum()):
        return None
    return numbers.to_numpy(dtype="float64", na_value=np.nan)


def sniff_delimiter(path: str) -> str:
    """The CSV delimiter: ``,`` unless the header line holds none and one of ``; \\t |`` instead."""
    import fsspec

    with fsspec.open(path, "rb", compression="infer") as handle:
        head = handle.read(65536)
    first = head.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    if "," in first:
        return ","
    counts = {d: first.count(d) for d in (";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _cast_types(kinds: dict[str, str]) -> dict[str, str]:
    """How each column is cast while scanning: numbers as float (ints are checked separately)."""
    cast = {"int": "float", "float": "float", "bool": "bool", "datetime": "datetime", "string": "string"}
    return {name: cast[kind] for name, kind in kinds.items() if kind in cast}


def _all_distinct(hashes: np.ndarray) -> bool:
    ordered = np.sort(hashes)  # a sort beats np.unique's hash table on a million keys
    return not bool((ordered[1:] == ordered[:-1]).any())


class _Demote(Exception):
    def __init__(self, column: str) -> None:
        self.column = column


def _count_rows(path: str, fmt: str, source: SourceSpec) -> int:
    """Rows of the whole file without converting it: Parquet metadata, a one-column CSV parse, lines."""
    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyarrow import csv

    if fmt == "parquet":
        return int(pq.ParquetFile(path).metadata.num_rows)
    if fmt == "csv":
        options = source.csv

        def open_csv(handle: Any, convert: Any = None) -> Any:
            return csv.open_csv(
                handle,
                read_options=csv.ReadOptions(
                    block_size=8 << 20, encoding=options.encoding, skip_rows=options.skip_rows
                ),
                parse_options=csv.ParseOptions(delimiter=options.delimiter, quote_char=options.quote_char),
                convert_options=convert,
            )

        with fsspec.open(path, "rb", compression="infer") as handle:
            first = open_csv(handle).schema.names[0]
        with fsspec.open(path, "rb", compression="infer") as handle:  # one column, as text: counting only
            only_first = csv.ConvertOptions(include_columns=[first], column_types={first: pa.string()})
            return sum(batch.num_rows for batch in open_csv(handle, only_first))
    with fsspec.open(path, "rb", compression="infer") as handle:
        return sum(1 for line in handle if line.strip())


def _chunks(path: str, uri: str, source: SourceSpec) -> Iterator[pd.DataFrame]:
    try:
        yield from read_chunks(path, source)
    except IngestError as exc:
        raise DraftError(f"{uri}: {str(exc).removeprefix(f'{path}: ')}") from None


def _scan_once(
    path: str, uri: str, source: SourceSpec, label: str, kinds: dict[str, str], profile_rows: int
) -> tuple[TableProfiler, Counter[Any] | None, bool, dict[str, bool], bool]:
    """One pass over the file; ``kinds`` is filled from the first chunk when empty."""
    profiler = TableProfiler()
    label_counts: Counter[Any] | None = Counter()
    fractional = False
    id_hashes: dict[str, list[np.ndarray]] = {}
    id_ok: dict[str, bool] = {}
    whole = True
    for chunk in _chunks(path, uri, source):
        if not kinds:
            if label not in chunk.columns:
                columns = ", ".join(repr(str(c)) for c in chunk.columns)
                raise DraftError(f"{uri}: no column '{label}' to use as the label; the columns are {columns}")
            kinds.update({str(name): infer_kind(chunk[name]) for name in chunk.columns})
        if profiler.rows + len(chunk) > profile_rows:
            chunk = chunk.iloc[: profile_rows - profiler.rows]
            whole = False
        typed = chunk
        for column, kind in _cast_types(kinds).items():
            if column not in chunk.columns:
                continue
            if kind == "float" and not pd.api.types.is_numeric_dtype(chunk[column]):
                floats = to_float(chunk[column])
                if floats is not None and not np.isinf(floats).any():
                    typed[column] = floats  # what cast_declared makes of it, without its slower parser
                    continue
            try:
                typed[column] = cast_declared(chunk[[column]], {column: kind})[column]
            except IngestError:
                raise _Demote(column) from None
        for column in kinds:
            if looks_like_id(column) and kinds[column] in ("int", "string") and id_ok.get(column, True):
                values = typed[column]
                id_ok[column] = not values.isna().any()
                if id_ok[column]:
                    id_hashes.setdefault(column, []).append(pd.util.hash_array(values.astype(str).to_numpy()))
        labels = typed[label].dropna()
        if pd.api.types.is_numeric_dtype(labels) and not pd.api.types.is_bool_dtype(labels):
            numbers = labels.to_numpy(dtype="float64")
            fractional = fractional or not bool((numbers == np.floor(numbers)).all())
        if label_counts is not None:
            label_counts.update(labels.value_counts(sort=False).to_dict())
            if len(label_counts) > LABEL_VALUES_CAP:
                label_counts = None
        profiler.add(typed)
        if not whole:
            break
    if not kinds:
        raise DraftError(f"{uri}: no data rows (only a header?)")
    unique = {c: id_ok.get(c, False) and _all_distinct(np.concatenate(h)) for c, h in id_hashes.items()}
    return profiler, label_counts, fractional, unique, whole


def scan(
    uri: str,
    label: str,
    sample_rows: int = SAMPLE_ROWS,
    profile_rows: int = PROFILE_ROWS,
    fmt: str | None = None,
) -> TableScan:
    """Type, profile and count the rows of one file (local path, ``file://`` or ``s3://``)."""
    if profile_rows < 50:
        raise DraftError(f"--profile-rows {profile_rows}: profile at least 50 rows")
    if storage.is_s3(uri) and uri.endswith("/"):
        raise DraftError(f"{uri}: give one file, not a folder")
    try:
        exists = storage.exists(uri)
    except Exception as exc:  # an S3 error without credentials, a bad URI
        raise DraftError(f"{uri}: cannot read it: {exc}") from None
    if not exists:
        raise DraftError(f"{uri}: no such file")
    if not storage.is_s3(uri) and storage.is_folder(uri):
        raise DraftError(f"{uri}: is a folder; give one data file")
    try:
        fmt = format_of(uri, fmt)
    except IngestError as exc:
        raise DraftError(str(exc)) from None
    with storage.local_copy(uri) as path:
        delimiter = "\t" if uri.lower().endswith(".tsv") else sniff_delimiter(path) if fmt == "csv" else ","
        source = SourceSpec(format=fmt, chunk_rows=max(1_000, sample_rows), csv=CsvOptions(delimiter=delimiter))  # type: ignore[arg-type]
        kinds: dict[str, str] = {}
        while True:  # ends: each retry turns one more column into text
            try:
                profiler, label_counts, fractional, unique, whole = _scan_once(
                    path, uri, source, label, kinds, profile_rows
                )
                break
            except _Demote as demoted:
                kinds[demoted.column] = "string"  # a later value is text: the column is text
        rows = profiler.rows if whole else _count_rows(path, fmt, source)
    result = profiler.result()
    columns = {
        name: ColumnScan(name, kind, result["columns"].get(name, {}), unique.get(name, False))
        for name, kind in kinds.items()
    }
    return TableScan(uri, fmt, delimiter, rows, profiler.rows, columns, label_counts, fractional)
