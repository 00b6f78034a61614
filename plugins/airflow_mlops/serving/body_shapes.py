"""The three body shapes on a decoded tree: the needed columns, with presence and row counts checked.

The general path of ``payload.parse_body`` (a body the typed decoder refused, or a split or
inputs body): ``needed_columns`` finds the shape, checks that every input feature is there in
every row and returns the columns plus ``locate(row, column)``, which names a cell's place in
that shape for an error. Errors are FastAPI-like dicts (``loc``, ``msg``, ``type``) raised as
one ``PayloadError`` (a 422).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import GenericAlias
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_mlops.serving.payload import InputSchema

MAX_REPORTED_ERRORS = 20
Locate = Callable[[int, str], list[Any]]
Columns = tuple[dict[str, list[Any]], int, Locate]


class PayloadError(ValueError):
    """The body does not fit the model's inputs; ``errors`` says where and why (for a 422)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))


def error(loc: list[Any], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": ["body", *loc], "msg": msg, "type": kind}


def check_rows(rows: int, loc: list[Any], schema: InputSchema) -> None:
    if rows == 0:
        raise PayloadError([error(loc, "no rows to predict", "empty")])
    if rows > schema.max_rows:
        raise PayloadError([error(loc, f"{rows} rows; at most {schema.max_rows} per request", "too_long")])


def needed_columns(document: Any, schema: InputSchema) -> Columns:
    """The needed columns of the body, whatever its shape, with presence checked."""
    if not isinstance(document, dict):
        raise PayloadError([error([], f"expected a JSON object with one of {list(BODY_KEYS)}", "object_expected")])
    keys = [k for k in BODY_KEYS if k in document]
    if len(keys) != 1:
        found = f"found {keys}" if keys else f"found keys {sorted(document)[:10]}"
        raise PayloadError([error([], f"expected exactly one of {list(BODY_KEYS)}; {found}", "shape_invalid")])
    key = keys[0]
    wanted = [*schema.required, *([schema.id_column] if schema.id_column is not None else [])]
    return SHAPES[key].columns(key, document[key], wanted, schema)


def _record_columns(key: str, records: Any, wanted: list[str], schema: InputSchema) -> Columns:
    """``{"instances": [{column: value, ...}, ...]}`` (or ``dataframe_records``)."""
    if not isinstance(records, list):
        raise PayloadError([error([key], "expected a list of objects, one per row", "list_expected")])
    check_rows(len(records), [key], schema)
    errors = []
    required = frozenset(schema.required)
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            errors.append(error([key, index], "expected an object (one row)", "object_expected"))
        elif not required.issubset(record):
            missing = [c for c in schema.required if c not in record]
            errors.append(error([key, index], f"missing field(s) {missing}", "missing"))
        if len(errors) >= MAX_REPORTED_ERRORS:
            break
    if errors:
        raise PayloadError(errors)
    columns = {c: [r[c] for r in records] for c in schema.required}
    if schema.id_column is not None and any(schema.id_column in r for r in records):
        columns[schema.id_column] = [r.get(schema.id_column) for r in records]
    return columns, len(records), lambda i, c: [key, i, c]


def _split_columns(key: str, split: Any, wanted: list[str], schema: InputSchema) -> Columns:
    """``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}``."""
    if (
        not isinstance(split, dict)
        or not isinstance(split.get("columns"), list)
        or not isinstance(split.get("data"), list)
    ):
        raise PayloadError([error([key], "expected {'columns': [...], 'data': [[...], ...]}", "shape_invalid")])
    names, data = split["columns"], split["data"]
    missing = [c for c in schema.required if c not in names]
    if missing:
        raise PayloadError([error([key, "columns"], f"missing column(s) {missing}", "missing")])
    check_rows(len(data), [key, "data"], schema)
    bad = [i for i, row in enumerate(data) if not isinstance(row, list) or len(row) != len(names)]
    if bad:
        raise PayloadError(
            [error([key, "data", i], f"expected a list of {len(names)} values", "shape_invalid")
             for i in bad[:MAX_REPORTED_ERRORS]]
        )  # fmt: skip
    position = {name: i for i, name in enumerate(names)}
    columns = {c: [row[position[c]] for row in data] for c in wanted if c in position}
    return columns, len(data), lambda i, c: [key, "data", i, position[c]]


def _inputs_columns(key: str, inputs: Any, wanted: list[str], schema: InputSchema) -> Columns:
    """``{"inputs": {column: [values], ...}}``."""
    if not isinstance(inputs, dict):
        raise PayloadError([error([key], "expected an object of column name -> list of values", "object_expected")])
    missing = [c for c in schema.required if c not in inputs]
    if missing:
        raise PayloadError([error([key], f"missing column(s) {missing}", "missing")])
    columns = {c: inputs[c] for c in wanted if c in inputs}
    not_lists = [c for c, v in columns.items() if not isinstance(v, list)]
    if not_lists:
        raise PayloadError([error([key, c], "expected a list of values", "list_expected") for c in not_lists])
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise PayloadError([error([key], f"columns differ in length: { {c: len(v) for c, v in columns.items()} }",
                                  "shape_invalid")])  # fmt: skip
    rows = lengths.pop()
    check_rows(rows, [key], schema)
    return columns, rows, lambda i, c: [key, c, i]


def _rows_openapi(schema: InputSchema, row: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": row, "minItems": 1, "maxItems": schema.max_rows}


def _split_openapi(schema: InputSchema, row: dict[str, Any]) -> dict[str, Any]:
    data = {"type": "array", "items": {"type": "array"}, "minItems": 1, "maxItems": schema.max_rows}
    return {
        "type": "object",
        "required": ["columns", "data"],
        "properties": {"columns": {"type": "array", "items": {"type": "string"}}, "data": data},
    }


def _inputs_openapi(schema: InputSchema, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(schema.required),
        "properties": {c: {"type": "array", "minItems": 1, "maxItems": schema.max_rows} for c in schema.required},
        "description": "Columns of equal length; other fields are ignored.",
    }


@dataclass(frozen=True)
class BodyShape:
    """One request body shape, every fact about it in one row.

    :param key: the body's one top-level key.
    :param columns: the general check of the decoded value: the needed columns, their row count
        and how to name a cell's place in the body.
    :param openapi: the JSON schema of the value (``serving.openapi`` lists every row's).
    :param typed: the value's type for the typed decoder (``InputSchema.decoder``), picked from
        the types it builds per model: ``rows`` (a list of row structs, the records fast path),
        ``split``, ``column``.
    :param records: decoded as rows of structs (the fast path); otherwise the typed value goes
        through ``as_document`` and the general check.
    """

    key: str
    columns: Callable[[str, Any, list[str], InputSchema], Columns]
    openapi: Callable[[InputSchema, dict[str, Any]], dict[str, Any]]
    typed: Callable[[dict[str, Any]], Any]
    records: bool = False
    as_document: Callable[[Any], Any] = lambda value: value


SHAPES: dict[str, BodyShape] = {
    shape.key: shape
    for shape in (
        BodyShape("instances", _record_columns, _rows_openapi, lambda t: t["rows"], records=True),
        BodyShape("dataframe_records", _record_columns, _rows_openapi, lambda t: t["rows"], records=True),
        BodyShape(
            "dataframe_split",
            _split_columns,
            _split_openapi,
            lambda t: t["split"],
            as_document=lambda value: {"columns": value.columns, "data": value.data},
        ),
        BodyShape("inputs", _inputs_columns, _inputs_openapi, lambda t: GenericAlias(dict, (str, t["column"]))),
    )
}
BODY_KEYS = tuple(SHAPES)
