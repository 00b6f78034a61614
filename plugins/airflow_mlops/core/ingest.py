"""Ingestion: CSV, Parquet and JSON Lines from files, globs or prefixes, read in chunks.

Every chunk is cast to the declared column types and checked, then streamed into one
Parquet dataset while it is fingerprinted and profiled, so memory stays bounded by the
chunk size whatever the input size. Every problem raises ``IngestError`` naming the
file, the column and what is wrong, in words a person can act on.
"""

from __future__ import annotations

import io
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from airflow_mlops.core import storage
from airflow_mlops.core.profiling import TableProfiler
from airflow_mlops.core.schema_changes import OlderSchemaError, apply_renames, required_columns, schema_gap
from airflow_mlops.core.spec import PipelineSpec, SourceSpec

SUFFIXES = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".csv.gz": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
GENERATOR_SCHEME = "generator://"
CSV_BLOCK_BYTES = 8 << 20  # also the largest single CSV field accepted
_GLOB = re.compile(r"[*?\[]")

logger = logging.getLogger(__name__)


class IngestError(ValueError):
    """An input that cannot be ingested; ``uri`` names the offending file when there is one."""

    def __init__(self, message: str, uri: str | None = None) -> None:
        super().__init__(f"{uri}: {message}" if uri else message)
        self.uri = uri


def format_of(uri: str, declared: str | None) -> str:
    if uri.startswith(GENERATOR_SCHEME):
        return "generator"
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
    if location.startswith(GENERATOR_SCHEME):
        return [location]
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


def _jsonl_chunks(handle: Any, chunk_rows: int) -> Iterator[pd.DataFrame]:
    text = io.TextIOWrapper(handle, encoding="utf-8")
    for number, frame in enumerate(pd.read_json(text, lines=True, chunksize=chunk_rows, dtype=False)):
        if not isinstance(frame, pd.DataFrame):
            raise IngestError(f"JSON Lines chunk {number} is not a table of objects")
        yield frame


def read_chunks(uri: str, source: SourceSpec) -> Iterator[pd.DataFrame]:
    """Yield the file's rows as DataFrames of at most about ``source.chunk_rows`` rows."""
    fmt = format_of(uri, source.format)
    if fmt == "generator":
        yield from _generated_chunks(uri, source.chunk_rows)
        return
    if storage.size(uri) == 0:
        raise IngestError("the file is empty (0 bytes)", uri)
    with storage.local_copy(uri) as path:
        yield from _read_local(path, uri, fmt, source)


def _read_local(path: str, uri: str, fmt: str, source: SourceSpec) -> Iterator[pd.DataFrame]:
    import fsspec

    def open_handle() -> Any:
        return fsspec.open(path, "rb", compression="infer").open()

    wide_encoding = any(width in source.csv.encoding for width in ("16", "32"))  # UTF-16/32 text has NUL bytes
    if fmt != "parquet" and not wide_encoding:
        with open_handle() as handle:
            head = handle.read(4096)
        if b"\x00" in head:
            raise IngestError(
                f"looks like a binary file (NUL bytes), not {fmt} text; compressed files need a .gz suffix", uri
            )
    try:
        if fmt == "csv":
            yield from _csv_chunks(open_handle, source, source.chunk_rows)
            return
        with open_handle() as handle:
            if fmt == "parquet":
                # pre_buffer=False: with it, pyarrow keeps every row group it read until the file
                # is closed (1.3 GiB held for a 10M-row file); without, memory stays at one batch.
                for batch in pq.ParquetFile(handle, pre_buffer=False).iter_batches(batch_size=source.chunk_rows):
                    yield batch.to_pandas()
            else:
                yield from _jsonl_chunks(handle, source.chunk_rows)
    except IngestError as exc:
        raise IngestError(str(exc), uri) from None
    except (pa.ArrowInvalid, pa.ArrowException, ValueError, UnicodeDecodeError, OSError, EOFError) as exc:
        raise IngestError(_explain(fmt, source, exc), uri) from None


def _generated_chunks(uri: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """``generator://churn?rows=5000&seed=3&drift=0.2``: a synthetic batch, in chunks."""
    from urllib.parse import parse_qs, urlparse

    from airflow_mlops.core.synthetic import GENERATORS

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


def _explain(fmt: str, source: SourceSpec, exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    lowered = text.lower()
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
    if fmt == "jsonl":
        return f"not valid JSON Lines (one JSON object per line): {text}"
    return f"cannot parse {fmt}: {text}"


def _bad_examples(original: pd.Series, converted: pd.Series) -> list[Any]:
    bad = original[original.notna() & converted.isna()]
    return bad.astype(str).unique()[:5].tolist()


def cast_declared(frame: pd.DataFrame, types: dict[str, str], uri: str | None = None) -> pd.DataFrame:
    """Cast the declared columns; name the column and show values that do not fit the type."""
    out = frame.copy()
    for column, kind in types.items():
        if column not in out.columns:
            continue
        original = out[column]
        if kind == "int" and pd.api.types.is_integer_dtype(original):
            out[column] = original.astype("Int64")  # already integers: no detour through float64
        elif kind in ("float", "int"):
            converted = pd.to_numeric(original, errors="coerce")
            bad = _bad_examples(original, converted)
            if bad:
                raise IngestError(f"column '{column}' is declared {kind} but has non-numeric values {bad}", uri)
            if kind == "int" and pd.api.types.is_integer_dtype(converted):
                out[column] = converted.astype("Int64")  # text digits parsed exactly
                continue
            values = converted.astype("float64")
            infinite = int(np.isinf(values).sum())
            if infinite:
                raise IngestError(f"column '{column}' has {infinite} infinite value(s) (inf/-inf)", uri)
            if kind == "int":
                fractional = values[values.notna() & (values != np.floor(values))]
                if len(fractional):
                    examples = fractional.unique()[:5].tolist()
                    raise IngestError(f"column '{column}' is declared int but has fractional values {examples}", uri)
                out[column] = values.astype("Int64")
            else:
                out[column] = values
        elif kind == "string":
            out[column] = original.astype("string")
        elif kind == "bool":
            mapping = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
            if pd.api.types.is_numeric_dtype(original):  # 0/1 that JSON or NaN made floats
                original = original.map(lambda v: v if pd.isna(v) else str(int(v)) if float(v).is_integer() else str(v))
            lowered = original.astype("string").str.strip().str.lower()
            converted = lowered.map(mapping)
            bad = _bad_examples(original, converted)
            if bad:
                raise IngestError(f"column '{column}' is declared bool but has values {bad}", uri)
            out[column] = converted.astype("boolean")
        elif kind == "datetime":
            if pd.api.types.is_numeric_dtype(original):
                raise IngestError(
                    f"column '{column}' is declared datetime but holds numbers (epoch values?); write ISO-8601 dates",
                    uri,
                )
            converted = pd.to_datetime(original, errors="coerce", utc=True, format="ISO8601")
            bad = _bad_examples(original, converted)
            if bad:
                raise IngestError(f"column '{column}' is declared datetime but has values {bad}", uri)
            out[column] = converted
    return out


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


def _load_enrichment(spec: PipelineSpec) -> list[tuple[Any, pd.DataFrame]]:
    """Each enrichment table, read whole (a dimension table) and checked: key present and unique."""
    return [
        (rule, read_keyed_table(rule.uri, rule.format, rule.on, rule.columns, "enrichment source"))
        for rule in spec.data.enrich
    ]


def _enrich(chunk: pd.DataFrame, enrichment: list[tuple[Any, pd.DataFrame]], uri: str) -> pd.DataFrame:
    for rule, table in enrichment:
        if rule.on not in chunk.columns:
            raise IngestError(f"enrichment key '{rule.on}' is not in the data", uri)
        clash = [c for c in rule.columns if c in chunk.columns]
        if clash:
            raise IngestError(f"enrichment columns {clash} already exist in the data", uri)
        keyed = chunk.assign(**{rule.on: chunk[rule.on].astype("string")})
        chunk = keyed.merge(table, on=rule.on, how=rule.how, validate="many_to_one")
    return chunk


def _file_digest(path: str) -> str:
    """Content fingerprint of the written dataset: the same rows, types and chunking give the same file."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(8 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _check_field_sizes(frame: pd.DataFrame, limit: int, uri: str) -> None:
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        longest = values.astype("string").str.len().max()
        if pd.notna(longest) and longest > limit:
            raise IngestError(
                f"column '{column}' holds a value of {int(longest):,} characters (limit "
                f"data.source.max_field_chars = {limit:,}): a broken export or an unclosed quote?",
                uri,
            )


@dataclass
class IngestResult:
    uri: str
    rows: int
    unlabeled_rows: int
    duplicates_dropped: int
    fingerprint: str
    profile: dict[str, Any]
    sources: list[str] = field(default_factory=list)
    rows_by_source: dict[str, int] = field(default_factory=dict)
    duplicates_by_source: dict[str, int] = field(default_factory=dict)
    skipped_schema: dict[str, list[str]] = field(default_factory=dict)


def _check_columns(frame: pd.DataFrame, spec: PipelineSpec, uri: str) -> None:
    required = required_columns(spec)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        hint = ""
        if len(frame.columns) == 1:
            header = str(frame.columns[0])
            found = [d for d in (";", "\t", "|", ",") if d in header]
            if found:
                hint = (
                    f"; the file has a single column '{header[:80]}': "
                    f"is data.source.csv.delimiter right ({found[0]!r} found)?"
                )
        raise IngestError(f"missing required column(s) {missing}{hint}", uri)
    if spec.data.source.extra_columns == "error":
        known = {*required, spec.data.label, *spec.data.dtypes, *(c for e in spec.data.enrich for c in e.columns)}
        extra = [c for c in frame.columns if c not in known]
        if extra:
            raise IngestError(f"unexpected column(s) {extra} (data.source.extra_columns is 'error')", uri)


def ingest(
    spec: PipelineSpec,
    uris: list[str],
    target_uri: str,
    on_bad_file: Callable[[str, IngestError], None] | None = None,
) -> IngestResult:
    """Read ``uris`` chunk by chunk into one Parquet dataset at ``target_uri``, profiling as it goes.

    Rows without a label are counted and left out (they cannot be trained on). A file that
    fails is reported to ``on_bad_file`` (e.g. to quarantine it) before the error is raised;
    the target is written atomically, so a failure leaves no dataset behind.

    Spec changes: columns are renamed per ``data.renamed`` as they are read. Files read before
    the first one that has every column the spec needs, and that lack only features or the id
    (the spec added them since), are left out with a warning and listed in ``skipped_schema``;
    they are not bad data, so they are not reported to ``on_bad_file``. A file that lacks them
    after a complete one is bad data. When no file has them the run fails, naming the columns.
    """
    from airflow_mlops.core.cleaning import Deduplicator, normalize_categories
    from airflow_mlops.core.labeling import Labeler, LabelingError

    if not uris:
        raise IngestError("no input files")
    try:
        labeler = Labeler(spec)
    except (LabelingError, IngestError) as exc:
        raise IngestError(f"labeling: {exc}") from None
    enrichment = _load_enrichment(spec)
    types = spec.declared_types
    known_columns = {
        *([spec.data.id_column] if spec.data.id_column else []),
        spec.data.label,
        *spec.data.features.all,
        *types,
        *(c for rule in spec.data.enrich for c in rule.columns),
        *([spec.split.time_column] if spec.split.time_column else []),
        *([spec.split.key] if spec.split.key else []),
        *([spec.labeling.join.on] if spec.labeling and spec.labeling.join else []),
    }
    label = spec.data.label
    deduplicator = Deduplicator(spec)
    profiler = TableProfiler()
    unlabeled, expected_columns = 0, None
    rows_by_source: dict[str, int] = {}
    duplicates_by_source: dict[str, int] = {}
    skipped: dict[str, list[str]] = {}
    writer: pq.ParquetWriter | None = None
    # Parquet encoding runs in a second thread (pyarrow releases the GIL) while this one
    # profiles the same chunk; at most one chunk is being written at a time.
    background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-writer")
    pending: Future[None] | None = None
    schema: pa.Schema | None = None
    with tempfile.TemporaryDirectory(prefix="airflow-mlops-ingest-") as tmp:
        local = os.path.join(tmp, "dataset.parquet")
        try:
            for uri in uris:
                file_rows, file_labeled, written = 0, 0, 0
                present: dict[str, int] = dict.fromkeys(spec.data.features.all, 0)
                dropped_before = deduplicator.dropped
                try:
                    for raw in read_chunks(uri, spec.data.source):
                        raw = apply_renames(raw, spec)
                        _check_field_sizes(raw, spec.data.source.max_field_chars, uri)
                        raw = _enrich(raw, enrichment, uri)
                        gap = schema_gap(raw, spec) if not rows_by_source and file_rows == 0 else []
                        if gap:
                            raise OlderSchemaError(gap)
                        _check_columns(raw, spec, uri)
                        if spec.data.source.extra_columns == "ignore":
                            raw = raw[[c for c in raw.columns if c in known_columns]]  # untyped extras go
                        expected_columns = expected_columns or list(raw.columns)
                        if set(raw.columns) != set(expected_columns):
                            first = sorted(expected_columns)
                            raise IngestError(
                                f"columns {sorted(raw.columns)} differ from those read first {first}", uri
                            )
                        raw = raw[expected_columns]  # same order in every chunk and file
                        # Rules and functions see typed, normalised columns.
                        chunk = normalize_categories(cast_declared(raw, types, uri), spec)
                        if labeler.active:
                            try:
                                chunk = labeler.apply(chunk)
                            except LabelingError as exc:
                                raise IngestError(str(exc), uri) from None
                            if label in types:
                                chunk = cast_declared(chunk, {label: types[label]}, uri)
                        file_rows += len(chunk)
                        for column in present:
                            present[column] += int(chunk[column].notna().sum())
                        labeled = chunk[chunk[label].notna()]
                        unlabeled += len(chunk) - len(labeled)
                        file_labeled += len(labeled)
                        labeled = deduplicator.apply(labeled)
                        if labeled.empty:
                            continue
                        try:
                            table = pa.Table.from_pandas(labeled.reset_index(drop=True), preserve_index=False)
                        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                            raise IngestError(f"a column mixes incompatible types: {exc}", uri) from None
                        if writer is None:
                            schema = table.schema
                            # Dictionary-encode only low-cardinality text: on ids and floats it costs 3x.
                            dictionary = [c for c in spec.data.features.categorical if c in schema.names]
                            writer = pq.ParquetWriter(local, schema, use_dictionary=dictionary)
                        try:
                            table = table.cast(schema)
                        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                            raise IngestError(f"column types differ from the first file's: {exc}", uri) from None
                        if pending is not None:
                            pending.result()
                        pending = background.submit(writer.write_table, table)
                        profiler.add(labeled)
                        written += len(labeled)
                    if file_rows == 0:
                        raise IngestError("no data rows (only a header?)", uri)
                    if file_labeled == 0:
                        raise IngestError(f"no labeled rows: all {file_rows} row(s) lack the label '{label}'", uri)
                    empty = [column for column, count in present.items() if count == 0]
                    if empty:
                        raise IngestError(f"feature column(s) {empty} are entirely empty", uri)
                except OlderSchemaError as older:
                    skipped[uri] = older.missing
                    logger.warning(
                        "%s: left out of the window: it lacks %s, which the spec now needs (a batch from before "
                        "the spec added them; not quarantined)",
                        uri,
                        older.missing,
                    )
                    continue
                except IngestError as exc:
                    if on_bad_file is not None:
                        on_bad_file(uri, exc)
                    raise
                rows_by_source[uri] = written  # labeled rows, in dataset order
                if deduplicator.dropped > dropped_before:
                    duplicates_by_source[uri] = deduplicator.dropped - dropped_before
            if not rows_by_source:
                lacking = sorted({c for missing in skipped.values() for c in missing})
                raise IngestError(
                    f"no batch of the {len(uris)} read has column(s) {lacking}, which the spec needs: if a feature "
                    "was added, land batches that carry it; if one was renamed, declare data.renamed: "
                    "{old_name: new_name}; otherwise check the spelling in the spec"
                )
        finally:
            try:
                if pending is not None:
                    pending.result()
            finally:
                background.shutdown(wait=True)
                if writer is not None:
                    writer.close()
        if deduplicator.dropped:
            logger.info("dropped %d duplicate row(s) %s", deduplicator.dropped, duplicates_by_source)
        rows = profiler.rows
        profile = profiler.result()
        fingerprint = _file_digest(local)
        storage.move_file(local, target_uri)
    return IngestResult(
        uri=target_uri,
        rows=rows,
        unlabeled_rows=unlabeled,
        duplicates_dropped=deduplicator.dropped,
        fingerprint=fingerprint,
        profile=profile,
        sources=[uri for uri in uris if uri not in skipped],
        rows_by_source=rows_by_source,
        duplicates_by_source=duplicates_by_source,
        skipped_schema=skipped,
    )
