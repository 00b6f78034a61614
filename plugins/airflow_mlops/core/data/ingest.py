"""Ingestion: CSV, Parquet and JSON Lines from files, globs or prefixes, read in chunks.

Every chunk is cast to the declared column types and checked, then streamed into one
Parquet dataset while it is fingerprinted and profiled, so memory stays bounded by the
chunk size whatever the input size. Every problem raises ``IngestError`` naming the
file, the column and what is wrong, in words a person can act on.

Every file of the run is read, even after one was rejected: each bad file is reported to
``on_bad_file`` (the data stage quarantines it) and the run then fails naming all of them, so
a window with several bad files is cleared in one run instead of one file per failed run.
Reading a file is ``core.data.sources``; any exception a file's content provokes while it is
read or processed becomes that file's ``IngestError``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from airflow_mlops.core.data.casting import cast_declared, check_field_sizes
from airflow_mlops.core.data.profiling import TableProfiler
from airflow_mlops.core.data.schema_changes import OlderSchemaError, apply_renames, required_columns, schema_gap
from airflow_mlops.core.data.sources import (
    IngestError,
    enrich,
    load_enrichment,
    read_chunks,
)
from airflow_mlops.core.excerpts import excerpt, short
from airflow_mlops.core.io import storage
from airflow_mlops.spec import PipelineSpec

MAX_CLASSES_KEPT = 100  # label classes counted per file, for the landed-batch checks

logger = logging.getLogger(__name__)


def _file_digest(path: str) -> str:
    """Content fingerprint of the written dataset: the same rows, types and chunking give the same file."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(8 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


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
    labeled_by_source: dict[str, int] = field(default_factory=dict)  # labeled rows read, before deduplication
    classes_by_source: dict[str, dict[str, int] | None] = field(default_factory=dict)  # classification only


def _names(columns: Any) -> list[Any]:
    """Column names as an error shows them: at most 20, each cut short (they come from the file)."""
    names = [short(str(c)) for c in columns]
    return [*names[:20], f"... {len(names) - 20} more"] if len(names) > 20 else names


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
                    f"; the file has a single column {excerpt(header)}: "
                    f"is data.source.csv.delimiter right ({found[0]!r} found)?"
                )
        raise IngestError(f"missing required column(s) {missing}{hint}", uri)
    if spec.data.source.extra_columns == "error":
        known = {*required, spec.data.label, *spec.data.dtypes, *(c for e in spec.data.enrich for c in e.columns)}
        extra = [c for c in frame.columns if c not in known]
        if extra:
            raise IngestError(f"unexpected column(s) {_names(extra)} (data.source.extra_columns is 'error')", uri)


class _WriteFailed(Exception):
    """Writing the run's dataset failed (disk, store): not the fault of the file being read."""


@dataclass
class _FileRead:
    rows: int = 0
    labeled: int = 0
    written: int = 0
    classes: dict[str, int] | None = field(default_factory=dict)


class _Window:
    """One ingestion: the files read so far, the dataset being written and what was learnt of it.

    After a file is rejected nothing more is written (the run will fail), but every later file
    is still read and checked, against what the files read *well* established (columns, types).
    """

    def __init__(self, spec: PipelineSpec, local: str) -> None:
        from airflow_mlops.core.data.cleaning import Deduplicator
        from airflow_mlops.core.data.labeling import Labeler, LabelingError

        try:
            self.labeler = Labeler(spec)
        except (LabelingError, IngestError) as exc:
            raise IngestError(f"labeling: {exc}") from None
        self.spec, self.local = spec, local
        self.enrichment = load_enrichment(spec)
        self.types = spec.declared_types
        self.known_columns = {
            *([spec.data.id_column] if spec.data.id_column else []),
            spec.data.label,
            *spec.data.features.all,
            *self.types,
            *(c for rule in spec.data.enrich for c in rule.columns),
            *([spec.split.time_column] if spec.split.time_column else []),
            *([spec.split.key] if spec.split.key else []),
            *([spec.labeling.join.on] if spec.labeling and spec.labeling.join else []),
        }
        self.count_classes = spec.model.task == "classification"
        self.deduplicator = Deduplicator(spec)
        self.profiler = TableProfiler()
        self.unlabeled = 0
        self.expected_columns: list[str] | None = None
        self.schema: pa.Schema | None = None
        self.set_by: dict[str, str] = {}  # "columns"/"schema" -> the file that set them
        self.rows_by_source: dict[str, int] = {}
        self.rejected = False
        self.writer: pq.ParquetWriter | None = None
        # Parquet encoding runs in a second thread (pyarrow releases the GIL) while this one
        # profiles the same chunk; at most one chunk is being written at a time.
        self.background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-writer")
        self.pending: Future[None] | None = None

    def read_file(self, uri: str) -> _FileRead:
        """Read, check and (unless a file was rejected) write one file; raise its ``IngestError``."""
        read = _FileRead(classes={} if self.count_classes else None)
        present: dict[str, int] = dict.fromkeys(self.spec.data.features.all, 0)
        for raw in read_chunks(uri, self.spec.data.source):
            try:
                self._chunk(uri, raw, read, present)
            except (IngestError, OlderSchemaError, _WriteFailed):
                raise
            except Exception as exc:  # what the content provoked that no check foresaw: still this file's
                raise IngestError(f"cannot be processed ({type(exc).__name__}): {excerpt(exc)}", uri) from exc
        label = self.spec.data.label
        if read.rows == 0:
            raise IngestError("no data rows (only a header?)", uri)
        if read.labeled == 0:
            raise IngestError(f"no labeled rows: all {read.rows} row(s) lack the label '{label}'", uri)
        empty = [column for column, count in present.items() if count == 0]
        if empty:
            raise IngestError(f"feature column(s) {empty} are entirely empty", uri)
        return read

    def forget(self, uri: str) -> None:
        """A rejected file establishes nothing for the files after it; nothing more is written."""
        self.rejected = True
        if self.set_by.get("columns") == uri:
            self.expected_columns = None
        if self.set_by.get("schema") == uri:
            self.schema = None

    def _chunk(self, uri: str, raw: pd.DataFrame, read: _FileRead, present: dict[str, int]) -> None:
        from airflow_mlops.core.data.cleaning import normalize_categories
        from airflow_mlops.core.data.labeling import LabelingError

        spec, label = self.spec, self.spec.data.label
        raw = apply_renames(raw, spec)
        check_field_sizes(raw, spec.data.source.max_field_chars, uri)
        raw = enrich(raw, self.enrichment, uri)
        gap = schema_gap(raw, spec) if not self.rows_by_source and read.rows == 0 else []
        if gap:
            raise OlderSchemaError(gap)
        _check_columns(raw, spec, uri)
        if spec.data.source.extra_columns == "ignore":
            raw = raw[[c for c in raw.columns if c in self.known_columns]]  # untyped extras go
        if self.expected_columns is None:
            self.expected_columns, self.set_by["columns"] = list(raw.columns), uri
        if set(raw.columns) != set(self.expected_columns):
            first = sorted(self.expected_columns)
            raise IngestError(f"columns {_names(sorted(raw.columns))} differ from those read first {first}", uri)
        raw = raw[self.expected_columns]  # same order in every chunk and file
        # Rules and functions see typed, normalised columns.
        chunk = normalize_categories(cast_declared(raw, self.types, uri), spec)
        if self.labeler.active:
            try:
                chunk = self.labeler.apply(chunk)
            except LabelingError as exc:
                raise IngestError(str(exc), uri) from None
            if label in self.types:
                chunk = cast_declared(chunk, {label: self.types[label]}, uri)
        read.rows += len(chunk)
        for column in present:
            present[column] += int(chunk[column].notna().sum())
        labeled = chunk[chunk[label].notna()]
        self.unlabeled += len(chunk) - len(labeled)
        read.labeled += len(labeled)
        if read.classes is not None:
            for value, count in labeled[label].astype("string").value_counts().items():
                read.classes[str(value)] = read.classes.get(str(value), 0) + int(count)
            if len(read.classes) > MAX_CLASSES_KEPT:
                read.classes = None
        labeled = self.deduplicator.apply(labeled)
        if labeled.empty:
            return
        try:
            table = pa.Table.from_pandas(labeled.reset_index(drop=True), preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise IngestError(f"a column mixes incompatible types: {excerpt(exc)}", uri) from None
        if self.schema is None:
            self.schema, self.set_by["schema"] = table.schema, uri
        try:
            table = table.cast(self.schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise IngestError(f"column types differ from the first file's: {excerpt(exc)}", uri) from None
        if not self.rejected:
            self._write(table)
            self.profiler.add(labeled)
            read.written += len(labeled)

    def _write(self, table: pa.Table) -> None:
        try:
            if self.writer is None:
                # Dictionary-encode only low-cardinality text: on ids and floats it costs 3x.
                dictionary = [c for c in self.spec.data.features.categorical if c in table.schema.names]
                self.writer = pq.ParquetWriter(self.local, table.schema, use_dictionary=dictionary)
            if self.pending is not None:
                self.pending.result()
        except Exception as exc:
            raise _WriteFailed(f"writing the run's dataset failed: {exc}") from exc
        self.pending = self.background.submit(self.writer.write_table, table)

    def close(self) -> None:
        try:
            if self.pending is not None:
                self.pending.result()
        finally:
            self.background.shutdown(wait=True)
            if self.writer is not None:
                self.writer.close()


BadFileHandler = Callable[[str, IngestError], str | None]


def _rejection(uri: str, error: IngestError, on_bad_file: BadFileHandler | None) -> IngestError:
    """The file's error, once ``on_bad_file`` set it aside, saying where it went."""
    where = on_bad_file(uri, error) if on_bad_file is not None else None
    if not where:
        return error
    named = IngestError(f"{error.reason}; quarantined at {where}", error.uri or uri)
    named.quarantined_at = where  # type: ignore[attr-defined]
    return named


def _rejected_error(rejected: list[IngestError], files: int) -> IngestError:
    if len(rejected) == 1:
        return rejected[0]
    lines = "\n".join(f"  - {error}" for error in rejected)
    return IngestError(f"{len(rejected)} of the {files} input files were rejected:\n{lines}")


def ingest(
    spec: PipelineSpec,
    uris: list[str],
    target_uri: str,
    on_bad_file: BadFileHandler | None = None,
) -> IngestResult:
    """Read ``uris`` chunk by chunk into one Parquet dataset at ``target_uri``, profiling as it goes.

    Rows without a label are counted and left out (they cannot be trained on). Every file is
    read; each that fails is reported to ``on_bad_file`` (e.g. to quarantine it; it returns
    where the file went, which the error then names), and the error is raised after the last
    file, naming every rejected file. The target is written atomically, so a failure leaves
    no dataset behind.

    Spec changes: columns are renamed per ``data.renamed`` as they are read. Files read before
    the first one that has every column the spec needs, and that lack only features or the id
    (the spec added them since), are left out with a warning and listed in ``skipped_schema``;
    they are not bad data, so they are not reported to ``on_bad_file``. A file that lacks them
    after a complete one is bad data. When no file has them the run fails, naming the columns.

    Long on purpose: the read, the per-file rejections and the publish of one dataset share the
    window's state; the per-chunk work is ``_Window``'s.
    """
    if not uris:
        raise IngestError("no input files")
    skipped: dict[str, list[str]] = {}
    rejected: list[IngestError] = []
    duplicates_by_source: dict[str, int] = {}
    labeled_by_source: dict[str, int] = {}
    classes_by_source: dict[str, dict[str, int] | None] = {}
    with tempfile.TemporaryDirectory(prefix="airflow-mlops-ingest-") as tmp:
        local = os.path.join(tmp, "dataset.parquet")
        window = _Window(spec, local)
        try:
            for uri in uris:
                dropped_before = window.deduplicator.dropped
                try:
                    read = window.read_file(uri)
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
                    window.forget(uri)
                    rejected.append(_rejection(uri, exc, on_bad_file))
                    continue
                window.rows_by_source[uri] = read.written  # labeled rows, in dataset order
                labeled_by_source[uri] = read.labeled
                if read.classes is not None or window.count_classes:
                    classes_by_source[uri] = read.classes
                if window.deduplicator.dropped > dropped_before:
                    duplicates_by_source[uri] = window.deduplicator.dropped - dropped_before
            if rejected:
                raise _rejected_error(rejected, len(uris))
            if not window.rows_by_source:
                lacking = sorted({c for missing in skipped.values() for c in missing})
                raise IngestError(
                    f"no batch of the {len(uris)} read has column(s) {lacking}, which the spec needs: if a feature "
                    "was added, land batches that carry it; if one was renamed, declare data.renamed: "
                    "{old_name: new_name}; otherwise check the spelling in the spec"
                )
        finally:
            window.close()
        dropped = window.deduplicator.dropped
        if dropped:
            logger.info("dropped %d duplicate row(s) %s", dropped, duplicates_by_source)
        rows = window.profiler.rows
        profile = window.profiler.result()
        fingerprint = _file_digest(local)
        storage.move_file(local, target_uri)
    return IngestResult(
        uri=target_uri,
        rows=rows,
        unlabeled_rows=window.unlabeled,
        duplicates_dropped=dropped,
        fingerprint=fingerprint,
        profile=profile,
        sources=[uri for uri in uris if uri not in skipped],
        rows_by_source=window.rows_by_source,
        duplicates_by_source=duplicates_by_source,
        skipped_schema=skipped,
        labeled_by_source=labeled_by_source,
        classes_by_source=classes_by_source,
    )
