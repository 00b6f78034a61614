"""Reading one input file (CSV, Parquet, JSON Lines, or a synthetic generator) as chunks of rows.

The contract ``core.data.ingest`` relies on: once the file's bytes are local, *every* failure to
read them (a parse error, a corrupt or fake ``.gz``, a NUL byte anywhere in a text file,
duplicate column names, a JSON document that is not JSON Lines, or an exception nobody
foresaw) comes out as an ``IngestError`` naming the file and what is wrong, so the file can
be rejected and quarantined. Failing to *reach* the bytes (a store outage while the file is
fetched) is not the file's fault and propagates as it is, so the task keeps its retries.
Messages quote the content only as short escaped excerpts (``core.excerpts``).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from airflow_mlops.core.excerpts import excerpt, short
from airflow_mlops.core.io import storage
from airflow_mlops.spec import PipelineSpec, SourceSpec
from airflow_mlops.spec.data import FORMAT_SUFFIXES

SUFFIXES = {suffix: kind for kind, suffixes in FORMAT_SUFFIXES.items() for suffix in suffixes}
GENERATOR_SCHEME = "generator://"
CSV_BLOCK_BYTES = 8 << 20  # also the largest single CSV field accepted
SCAN_BLOCK_BYTES = 8 << 20
JSON_SNIFF_BYTES = 64 << 10
_GLOB = re.compile(r"[*?\[]")
_JSON_LINES = "the reader takes JSON Lines: one JSON object per line, its keys the column names"


class IngestError(ValueError):
    """An input that cannot be ingested; ``uri`` names the offending file when there is one."""

    def __init__(self, message: str, uri: str | None = None) -> None:
        super().__init__(f"{uri}: {message}" if uri else message)
        self.uri = uri
        self.reason = message


def format_of(uri: str, declared: str | None) -> str:
    """The reader kind of ``uri``: its URI scheme's, the declared format, or its suffix's."""
    scheme = _scheme_reader(uri)
    if scheme is not None:
        return scheme.kind
    if declared:
        return declared
    name = uri.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return SUFFIXES[suffix]
    raise IngestError(
        f"cannot tell the file format from its name; supported suffixes: {sorted(SUFFIXES)} "
        "(or set data.source.format)",
        uri,
    )


def resolve_uris(location: str) -> list[str]:
    """The data files a location names: one file, a glob, or every data file under a folder/prefix."""
    if _scheme_reader(location) is not None:
        return [location]  # a source named by its URI, not a file
    if _GLOB.search(location.split("://", 1)[-1]):
        found = storage.glob(location)
        if not found:
            raise IngestError(f"no input files match the pattern {location}")
        return found
    if location.endswith("/") or storage.is_folder(location):
        found = storage.list_files(location, tuple(SUFFIXES))
        if not found:
            raise IngestError(f"no data files ({', '.join(sorted(SUFFIXES))}) in {location}")
        return found
    if not storage.exists(location):
        raise IngestError(f"input file {location} does not exist")
    return [location]


def _unique_columns(names: list[Any]) -> None:
    if len({str(name) for name in names}) == len(names):
        return
    counts = pd.Series([str(name) for name in names], dtype="object").value_counts()
    repeated = counts[counts > 1].index.tolist()
    if repeated:
        shown = [short(name) for name in repeated][:10]
        raise IngestError(f"column name(s) {shown} appear more than once in the header; give each column one name")


def _csv_chunks(open_handle: Callable[[], Any], source: SourceSpec, chunk_rows: int) -> Iterator[pd.DataFrame]:
    from pyarrow import csv

    options = source.csv
    read_options = csv.ReadOptions(
        block_size=CSV_BLOCK_BYTES,
        encoding=options.encoding,
        skip_rows=options.skip_rows,
        autogenerate_column_names=not options.header,
    )
    parse_options = csv.ParseOptions(delimiter=options.delimiter, quote_char=options.quote_char)
    # Every column is read as text and typed by ``cast_declared``: a type inferred from the
    # first block would break on a later block, and declared types must win anyway.
    with open_handle() as handle:
        names = csv.open_csv(handle, read_options=read_options, parse_options=parse_options).schema.names
    _unique_columns(names)
    reader = csv.open_csv(
        open_handle(),
        read_options=read_options,
        parse_options=parse_options,
        convert_options=csv.ConvertOptions(
            null_values=options.null_values,
            strings_can_be_null=True,
            column_types=dict.fromkeys(names, pa.string()),
        ),
    )
    pending: list[pd.DataFrame] = []
    size = 0
    for batch in reader:
        frame = batch.to_pandas()
        pending.append(frame)
        size += len(frame)
        if size >= chunk_rows:
            yield pd.concat(pending, ignore_index=True)
            pending, size = [], 0
    if pending:
        yield pd.concat(pending, ignore_index=True)


def json_shape_problem(head: bytes, whole: bool) -> str | None:
    """What is wrong with a ``.json``/``.jsonl`` file whose first bytes are ``head``, if its shape
    is not JSON Lines: one array of records, one object over several lines, or lines that are
    arrays or values. ``whole``: ``head`` is the entire file."""
    text = head.decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
    if not text:
        return None
    line, newline, rest = text.partition("\n")
    complete = bool(newline) or whole
    try:
        first = json.loads(line) if complete else None
    except ValueError:
        first = None
        complete = False
    if isinstance(first, list):
        if first and all(isinstance(item, dict) for item in first):
            return f"holds one JSON array (records-oriented JSON); {_JSON_LINES} (convert with: jq -c '.[]')"
        return f"line 1 is a JSON array, not an object; {_JSON_LINES}"
    if first is not None and not isinstance(first, dict):
        return f"line 1 is a JSON {type(first).__name__} ({excerpt(line)}), not an object; {_JSON_LINES}"
    if first is None and line.startswith("["):
        return f"holds one JSON array (records-oriented JSON); {_JSON_LINES} (convert with: jq -c '.[]')"
    if first is None and line.startswith("{") and (complete or len(line) < 4096) and rest.strip():
        return f"holds one JSON object spread over several lines; {_JSON_LINES} (convert with: jq -c)"
    return None


def _jsonl_chunks(open_handle: Callable[[], Any], chunk_rows: int) -> Iterator[pd.DataFrame]:
    with open_handle() as handle:
        head = handle.read(JSON_SNIFF_BYTES)
        whole = not handle.read(1)
    problem = json_shape_problem(head, whole)
    if problem:
        raise IngestError(problem)
    with open_handle() as handle:
        text = io.TextIOWrapper(handle, encoding="utf-8")
        for number, frame in enumerate(pd.read_json(text, lines=True, chunksize=chunk_rows, dtype=False)):
            if not isinstance(frame, pd.DataFrame):
                raise IngestError(f"JSON Lines chunk {number} is not a table of objects")
            yield frame


def _scan_for_nul(open_handle: Callable[[], Any], fmt: str) -> None:
    """A NUL byte anywhere in a text file (its uncompressed bytes) marks it as binary or broken.

    One streaming pass in blocks, so memory stays at one block whatever the file's size.
    """
    offset = 0
    with open_handle() as handle:
        for block in iter(lambda: handle.read(SCAN_BLOCK_BYTES), b""):
            where = block.find(b"\x00")
            if where >= 0:
                at = offset + where
                if at < 4096:
                    raise IngestError(
                        f"looks like a binary file (NUL bytes), not {fmt} text; compressed files need a .gz suffix"
                    )
                raise IngestError(
                    f"NUL byte(s) at offset {at:,} of the text: a binary fragment or a broken export inside the "
                    f"{fmt} text; near it: {excerpt(block[max(where - 40, 0) : where])}"
                )
            offset += len(block)


def read_chunks(uri: str, source: SourceSpec) -> Iterator[pd.DataFrame]:
    """Yield the file's rows as DataFrames of at most about ``source.chunk_rows`` rows."""
    scheme = _scheme_reader(uri)
    if scheme is not None:
        yield from scheme.chunks(uri, source.chunk_rows)
        return
    fmt = format_of(uri, source.format)
    if storage.size(uri) == 0:
        raise IngestError("the file is empty (0 bytes)", uri)
    with storage.local_copy(uri) as path:
        yield from _read_local(path, uri, fmt, source)


def _read_local(path: str, uri: str, fmt: str, source: SourceSpec) -> Iterator[pd.DataFrame]:
    import fsspec

    def open_handle() -> Any:
        return fsspec.open(path, "rb", compression="infer").open()

    wide_encoding = any(width in source.csv.encoding for width in ("16", "32"))  # UTF-16/32 text has NUL bytes
    reader = FILE_READERS[fmt]
    try:
        if reader.text and not wide_encoding:
            _scan_for_nul(open_handle, fmt)
        for frame in reader.chunks(open_handle, source):
            _unique_columns(list(frame.columns))
            yield frame
    except IngestError as exc:
        raise IngestError(exc.reason, uri) from None
    except Exception as exc:  # anything else the bytes provoke: a rejection of this file, named
        raise IngestError(_explain(fmt, source, exc, path), uri) from exc


def _parquet_chunks(open_handle: Callable[[], Any], chunk_rows: int) -> Iterator[pd.DataFrame]:
    with open_handle() as handle:
        # pre_buffer=False: with it, pyarrow keeps every row group it read until the file
        # is closed (1.3 GiB held for a 10M-row file); without, memory stays at one batch.
        for batch in pq.ParquetFile(handle, pre_buffer=False).iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()


def _generated_chunks(uri: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """``generator://churn?rows=5000&seed=3&drift=0.2``: a synthetic batch, in chunks."""
    from urllib.parse import parse_qs, urlparse

    from airflow_mlops.core.data.synthetic import GENERATORS

    parsed = urlparse(uri)
    make = GENERATORS.get(parsed.netloc)
    if make is None:
        raise IngestError(f"unknown generator '{parsed.netloc}'; known: {sorted(GENERATORS)}", uri)
    query = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
    try:
        frame = make(rows=int(query.get("rows", 5000)), seed=int(query.get("seed", 0)),
                     drift=float(query.get("drift", 0.0)))  # fmt: skip
    except ValueError as exc:
        raise IngestError(f"bad generator parameters: {exc}", uri) from None
    for start in range(0, len(frame), chunk_rows):
        yield frame.iloc[start : start + chunk_rows].reset_index(drop=True)


def _explain(fmt: str, source: SourceSpec, exc: Exception, path: str = "") -> str:
    """Words for a read failure; the library's own message is quoted as a short excerpt (it
    can hold a row of the file)."""
    import gzip
    import zlib

    raw = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = excerpt(raw)
    lowered = raw.lower()
    if path.lower().endswith(".gz") and isinstance(exc, zlib.error | gzip.BadGzipFile | EOFError):
        return f"not a readable gzip file (truncated, corrupt, or not compressed at all?): {text}"
    if fmt == "parquet":
        return f"not a readable Parquet file (truncated or corrupt?): {text}"
    if "utf8" in lowered or "utf-8" in lowered or isinstance(exc, UnicodeDecodeError):
        return f"text is not valid {source.csv.encoding}; set data.source.csv.encoding (e.g. latin-1): {text}"
    if "straddling" in lowered or "block" in lowered:
        return f"a single CSV field is larger than {CSV_BLOCK_BYTES >> 20} MiB, or a quote is never closed: {text}"
    if "expected" in lowered and "columns" in lowered:
        return (
            f"rows have different numbers of fields (a ragged row, an unclosed quote, or the wrong delimiter?): {text}"
        )
    if fmt == "jsonl" and isinstance(exc, ValueError):
        return f"not valid JSON Lines (one JSON object per line): {text}"
    if isinstance(exc, ValueError | OSError | EOFError | pa.ArrowException):
        return f"cannot parse {fmt}: {text}"
    return f"cannot be read as {fmt} ({type(exc).__name__}): {text}"


@dataclass(frozen=True)
class FileReader:
    """One file format: how its (local, possibly compressed) bytes become chunks of rows.

    ``text`` formats are scanned for NUL bytes first (a binary file renamed ``.csv``). The
    suffixes that name a format live beside its name in ``spec.data.FORMAT_SUFFIXES``.
    """

    kind: str
    chunks: Callable[[Callable[[], Any], SourceSpec], Iterator[pd.DataFrame]]
    text: bool = True


@dataclass(frozen=True)
class SchemeReader:
    """A source named by a URI scheme instead of a file (nothing to fetch): ``scheme`` + chunks."""

    kind: str
    scheme: str
    chunks: Callable[[str, int], Iterator[pd.DataFrame]]


# One row per source kind: adding a file format is a row here plus its suffixes in spec/data.py.
FILE_READERS: dict[str, FileReader] = {
    "parquet": FileReader("parquet", lambda handle, source: _parquet_chunks(handle, source.chunk_rows), text=False),
    "csv": FileReader("csv", lambda handle, source: _csv_chunks(handle, source, source.chunk_rows)),
    "jsonl": FileReader("jsonl", lambda handle, source: _jsonl_chunks(handle, source.chunk_rows)),
}
SCHEME_READERS: tuple[SchemeReader, ...] = (SchemeReader("generator", GENERATOR_SCHEME, _generated_chunks),)


def _scheme_reader(uri: str) -> SchemeReader | None:
    return next((reader for reader in SCHEME_READERS if uri.startswith(reader.scheme)), None)


# Keyed side tables: read whole, one row per key (enrichment dimensions, late labels).


def read_keyed_table(
    location: str,
    fmt: Literal["parquet", "csv", "jsonl"] | None,
    key: str,
    columns: list[str],
    what: str,
    rows_noun: str = "rows",
) -> pd.DataFrame:
    """A side table read whole (enrichment, late labels): ``key`` plus ``columns``, one row per key."""
    frames = []
    for uri in resolve_uris(location):
        for chunk in read_chunks(uri, SourceSpec(format=fmt)):
            missing = [c for c in (key, *columns) if c not in chunk.columns]
            if missing:
                raise IngestError(f"{what} lacks column(s) {missing}", uri)
            frames.append(chunk[[key, *columns]])
    table = pd.concat(frames, ignore_index=True)
    table[key] = table[key].astype("string")
    repeated = table[key][table[key].duplicated()].unique()[:5].tolist()
    if repeated:
        raise IngestError(f"{what} {location} has several {rows_noun} for key(s) {repeated}")
    return table


def load_enrichment(spec: PipelineSpec) -> list[tuple[Any, pd.DataFrame]]:
    """Each enrichment table, read whole (a dimension table) and checked: key present and unique."""
    return [
        (rule, read_keyed_table(rule.uri, rule.format, rule.on, rule.columns, "enrichment source"))
        for rule in spec.data.enrich
    ]


def enrich(chunk: pd.DataFrame, enrichment: list[tuple[Any, pd.DataFrame]], uri: str) -> pd.DataFrame:
    """``chunk`` joined with each enrichment table on its key (many rows to one)."""
    for rule, table in enrichment:
        if rule.on not in chunk.columns:
            raise IngestError(f"enrichment key '{rule.on}' is not in the data", uri)
        clash = [c for c in rule.columns if c in chunk.columns]
        if clash:
            raise IngestError(f"enrichment columns {clash} already exist in the data", uri)
        keyed = chunk.assign(**{rule.on: chunk[rule.on].astype("string")})
        chunk = keyed.merge(table, on=rule.on, how=rule.how, validate="many_to_one")
    return chunk
