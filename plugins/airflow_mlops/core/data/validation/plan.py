"""Which columns each Great Expectations batch needs, and where those columns come from.

A suite is split into batches by the columns its expectations read: a column's
expectations run on a frame of that column alone, a column-pair or multicolumn
expectation on its columns, a row-count check on a frame with the table's row index and
no columns, a check of the column names on an empty frame with every column. Each
expectation still sees whole columns, so GX's semantics (``mostly``, uniqueness, means,
quantiles) are unchanged; only one batch's columns are in memory at a time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from airflow_mlops.spec import ExpectationSpec

BatchKind = Literal["columns", "rows", "schema", "table"]

# Table-level expectations that read no column values.
ROW_COUNT_TYPES = frozenset({"expect_table_row_count_to_be_between", "expect_table_row_count_to_equal"})
SCHEMA_TYPES = frozenset(
    {
        "expect_table_columns_to_match_ordered_list",
        "expect_table_columns_to_match_set",
        "expect_table_column_count_to_be_between",
        "expect_table_column_count_to_equal",
    }
)
_COLUMN_ARGUMENTS = ("column", "column_A", "column_B")
_LIST_ARGUMENTS = ("column_list",)


@dataclass(frozen=True)
class PlannedBatch:
    """One GX batch: what it holds (``kind`` + ``columns``) and the suite positions it checks."""

    kind: BatchKind
    columns: tuple[str, ...]
    items: tuple[int, ...]

    def label(self, number: int) -> str:
        """A readable, unique name for this batch's suite (it names the page in GX Data Docs)."""
        what = {"rows": "row_count", "schema": "table_columns", "table": "table"}.get(self.kind)
        if what is None:
            what = "+".join(self.columns)[:80] or "missing_columns"
        return f"{number:02d}.{what}"


def referenced_columns(item: ExpectationSpec, table_columns: list[str]) -> list[str]:
    """Columns ``item`` reads: its column arguments plus any named in its ``row_condition``."""
    found: list[str] = []
    for key in _COLUMN_ARGUMENTS:
        value = item.kwargs.get(key)
        if isinstance(value, str):
            found.append(value)
    for key in _LIST_ARGUMENTS:
        value = item.kwargs.get(key)
        if isinstance(value, list | tuple):
            found.extend(str(v) for v in value)
    condition = item.kwargs.get("row_condition")
    if isinstance(condition, str) and condition:
        # A superset is harmless: a column whose name appears in the condition is loaded too.
        found.extend(c for c in table_columns if re.search(rf"(?<![\w]){re.escape(c)}(?![\w])", condition))
    return list(dict.fromkeys(found))


def plan_batches(items: list[ExpectationSpec], table_columns: list[str]) -> list[PlannedBatch]:
    """Group suite positions into batches by the columns they read, in suite order.

    Referenced columns that the table lacks are left out of the batch, so GX reports them
    the same way as on the whole table (``expect_column_to_exist`` fails, other checks on
    that column fail with GX's missing-column error).
    """
    present = set(table_columns)
    groups: dict[tuple[BatchKind, tuple[str, ...]], list[int]] = {}
    for index, item in enumerate(items):
        kind: BatchKind
        # Checks of the column names come first: their column_list names columns, not data to read.
        if item.type in SCHEMA_TYPES:
            groups.setdefault(("schema", ()), []).append(index)
            continue
        columns = referenced_columns(item, table_columns)
        if columns:
            kind = "columns"
            key_columns = tuple(sorted(c for c in columns if c in present))
        elif item.type in ROW_COUNT_TYPES:
            kind, key_columns = "rows", ()
        else:  # an expectation whose columns cannot be told from its arguments: give it the whole table
            kind, key_columns = "table", tuple(table_columns)
        groups.setdefault((kind, key_columns), []).append(index)
    return [PlannedBatch(kind, columns, tuple(positions)) for (kind, columns), positions in groups.items()]


@dataclass
class TableSource:
    """A table validation can read column by column: its column names, row count and a reader."""

    columns: list[str]
    rows: int
    read_columns: Callable[[list[str]], pd.DataFrame]
    empty: Callable[[], pd.DataFrame]

    def frame_for(self, batch: PlannedBatch) -> pd.DataFrame:
        if batch.kind == "schema":
            return self.empty()
        if batch.kind == "rows" or not batch.columns:
            return pd.DataFrame(index=pd.RangeIndex(self.rows))
        return self.read_columns(list(batch.columns))


def frame_source(frame: pd.DataFrame) -> TableSource:
    """A DataFrame already in memory."""
    return TableSource(
        columns=[str(c) for c in frame.columns],
        rows=len(frame),
        read_columns=lambda columns: frame[columns],
        empty=lambda: frame.iloc[0:0],
    )


@contextmanager
def parquet_source(uri: str, start: int = 0, stop: int | None = None) -> Iterator[TableSource]:
    """A Parquet file (local or s3://), optionally rows ``start:stop``; columns are read on demand."""
    import pyarrow.parquet as pq

    from airflow_mlops.core.io.storage import local_copy

    with local_copy(uri) as path:
        schema = pq.read_schema(path)
        total = pq.ParquetFile(path).metadata.num_rows
        end = total if stop is None else min(stop, total)
        columns = [name for name in schema.names if not name.startswith("__index_level_")]

        def read_columns(wanted: list[str]) -> pd.DataFrame:
            frame = pd.read_parquet(path, columns=wanted)
            if start or end < total:
                frame = frame.iloc[start:end].reset_index(drop=True)
            return frame

        def empty() -> pd.DataFrame:
            return schema.empty_table().to_pandas()[columns]

        yield TableSource(columns=columns, rows=max(end - start, 0), read_columns=read_columns, empty=empty)
