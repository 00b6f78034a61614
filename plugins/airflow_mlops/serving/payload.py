"""Request bodies to model inputs, without pandas: the serving app's hot path.

Three body shapes are accepted (the first two are also what ``mlflow models serve``
takes, so one client can talk to both):

- records: ``{"instances": [{"tenure_months": 3, "plan": "basic", ...}, ...]}``
  (``dataframe_records`` is a synonym);
- split: ``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}``;
- columns: ``{"inputs": {"tenure_months": [3, 40], "plan": ["basic", null]}}``.

Every input feature must be present in every row; ``null`` is a missing value (imputed
by the model like in training). Numbers must be JSON numbers within float32's range (the
model's input type), categories JSON strings; the cells of a split body and the values of
an ``inputs`` column are JSON scalars. A body is decoded once, into one tree; one that may
hold more rows than allowed is counted first (``serving.limits``).
Other fields are ignored, except the spec's id column, which is logged with the
prediction. What comes out equals ``packaging.onnx_feeds`` on the same rows (a unit test
holds the two together): the same category clean-up, derived features and types.
The shapes checked on a decoded tree (the general path) and ``PayloadError`` are in
``serving.body_shapes``.
"""

from __future__ import annotations

import ast
import functools
import operator
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Optional

import msgspec
import numpy as np

from airflow_mlops.core.model.features import (
    MISSING_CATEGORY,
    InputContract,
    NormalizeRule,
    clean_category,
    derived_values,
)
from airflow_mlops.serving import limits
from airflow_mlops.serving.body_shapes import (
    BODY_KEYS,
    MAX_REPORTED_ERRORS,
    SHAPES,
    Locate,
    PayloadError,
    check_rows,
    error,
    needed_columns,
)
from airflow_mlops.spec import PipelineSpec

_NUMBER_TYPES: frozenset[type] = frozenset({int, float, type(None)})
_TEXT_TYPES: frozenset[type] = frozenset({str, type(None)})
Scalar = Optional[str | int | float | bool]  # noqa: UP045
_decoder = msgspec.json.Decoder()
_UNREADABLE = (msgspec.DecodeError, RecursionError, UnicodeDecodeError)


@dataclass(frozen=True)
class InputSchema:
    """What a request must carry, and how it becomes model inputs (from the spec)."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    derived: tuple[tuple[str, ast.Expression], ...]
    id_column: str | None  # None: the spec has no id; rows carry none and none is logged
    max_rows: int = 10_000
    normalize: dict[str, tuple[NormalizeRule, ...]] = field(default_factory=dict)
    # Categories declared int or bool in data.dtypes arrive as JSON numbers or booleans and
    # become text as training makes them (str(value)); numbers declared bool accept true/false.
    coded_categories: frozenset[str] = frozenset()
    boolean_numbers: frozenset[str] = frozenset()

    @classmethod
    def from_spec(cls, spec: PipelineSpec, max_rows: int = 10_000) -> InputSchema:
        contract = InputContract.from_spec(spec)
        return cls(
            numeric=contract.numeric,
            categorical=contract.categorical,
            derived=contract.derived_trees(),
            id_column=spec.data.id_column,
            max_rows=max_rows,
            normalize=dict(contract.normalize),
            coded_categories=frozenset(
                c for c in contract.categorical if spec.declared_types.get(c) in ("int", "bool")
            ),
            boolean_numbers=frozenset(c for c in contract.numeric if spec.declared_types.get(c) == "bool"),
        )

    def allowed_types(self, column: str) -> tuple[frozenset[type], str]:
        if column in self.numeric:
            if column in self.boolean_numbers:
                return _NUMBER_TYPES | {bool}, "a number or a boolean"
            return _NUMBER_TYPES, "a number"
        if column in self.coded_categories:
            return _TEXT_TYPES | {int, bool}, "a string, an integer or a boolean"
        return _TEXT_TYPES, "a string"

    @functools.cached_property
    def decoder(self) -> msgspec.json.Decoder[Any]:
        """A typed decoder: msgspec checks every row and type in C while it parses.

        Fields get neutral names (``f0``...) renamed to the feature names, so any column
        name works. Rows may carry other fields; they are skipped.
        """
        names = [*self.numeric, *self.categorical]
        row_fields: list[Any] = [
            (f"f{i}", Optional[float | bool] if c in self.boolean_numbers else Optional[float])  # noqa: UP045
            for i, c in enumerate(self.numeric)
        ]
        row_fields += [
            (f"f{len(self.numeric) + i}", Optional[str | int | bool] if c in self.coded_categories else Optional[str])  # noqa: UP045
            for i, c in enumerate(self.categorical)
        ]
        rename = {f"f{i}": name for i, name in enumerate(names)}
        if self.id_column is not None:
            row_fields.append(("row_id", Optional[str | int], None))  # noqa: UP045
            rename["row_id"] = self.id_column
        # gc=False: rows hold only scalars, so the cyclic collector need not track them.
        row = msgspec.defstruct("Row", row_fields, rename=rename, kw_only=True, gc=False)
        rows = list[row]  # type: ignore[valid-type]
        # Split cells and inputs values are scalars: a nested value, even in an ignored column,
        # would make the decoded tree many times larger than the body.
        line = Annotated[list[Scalar], msgspec.Meta(min_length=len(self.required))]
        split = msgspec.defstruct("Split", [("columns", list[Scalar]), ("data", list[line])])  # type: ignore[valid-type]
        column = Annotated[list[Scalar], msgspec.Meta(max_length=self.max_rows)]
        types = {"rows": rows, "split": split, "column": column}
        fields = [(shape.key, Optional[shape.typed(types)], None) for shape in SHAPES.values()]  # noqa: UP045
        body = msgspec.defstruct("Body", fields)
        return msgspec.json.Decoder(body)

    @functools.cached_property
    def census(self) -> limits.Census:
        return limits.Census(self.max_rows)

    @functools.cached_property
    def getters(self) -> tuple[tuple[str, Any], ...]:
        names = [*self.numeric, *self.categorical]
        return tuple((name, operator.attrgetter(f"f{i}")) for i, name in enumerate(names))

    @property
    def required(self) -> tuple[str, ...]:
        return (*self.numeric, *self.categorical)

    @property
    def model_numeric(self) -> tuple[str, ...]:
        return (*self.numeric, *(name for name, _ in self.derived))

    @property
    def model_inputs(self) -> tuple[str, ...]:
        return (*self.model_numeric, *self.categorical)


@dataclass
class ModelInputs:
    """One request's rows as model inputs: ``features`` for the log, ``feeds`` for ONNX Runtime."""

    rows: int
    features: dict[str, np.ndarray]
    feeds: dict[str, np.ndarray]
    ids: list[Any] | None


def parse_body(body: bytes, schema: InputSchema) -> ModelInputs:
    """Decode and check a request body; raise ``PayloadError`` naming every problem found.

    The body is decoded once, by a typed decoder (rows become structs, split cells and
    inputs values scalars); a body large enough to exceed the row limit is counted first
    (``limits.Census``), so it is refused before a tree of its rows exists. Rows
    (``instances``/``dataframe_records``) take the fast path; the other shapes are checked
    on the decoded tree. A small body the typed decoder refuses is read again by the general
    path, which lists every problem instead of the first; a large one gets the first problem
    only (a second decode would cost as much as the first). Nothing in a body raises anything
    but ``PayloadError``: malformed JSON, invalid UTF-8 and nesting too deep are named too.
    """
    large = limits.may_exceed(body, schema.max_rows)
    if large:
        refused = schema.census.refusal(body)
        if refused is not None:
            raise PayloadError([_typed_error(refused, schema)])
    try:
        typed = schema.decoder.decode(body)
    except msgspec.ValidationError as exc:
        if large:
            raise PayloadError([_typed_error(str(exc), schema)]) from None
        return _parse_generally(body, schema, str(exc))
    except _UNREADABLE as exc:
        raise PayloadError([_unreadable(exc)]) from None
    given = [k for k in BODY_KEYS if getattr(typed, k) is not None]
    if len(given) != 1:
        if not large:
            return _parse_generally(body, schema, None)  # small: the general path's exact wording
        raise PayloadError([error([], f"expected exactly one of {list(BODY_KEYS)}; found {given}", "shape_invalid")])
    key = given[0]
    if not SHAPES[key].records:
        document = {key: SHAPES[key].as_document(getattr(typed, key))}
        columns, rows, locate = needed_columns(document, schema)
        return build_inputs(columns, rows, schema, locate=locate)
    records = getattr(typed, key)
    check_rows(len(records), [key], schema)
    columns = {name: list(map(get, records)) for name, get in schema.getters}
    ids = [r.row_id for r in records] if schema.id_column is not None else []
    if any(v is not None for v in ids):
        columns[str(schema.id_column)] = ids
    return build_inputs(columns, len(records), schema, checked=True, locate=lambda i, c: [key, i, c])


def _parse_generally(body: bytes, schema: InputSchema, typed_error: str | None) -> ModelInputs:
    try:
        document = _decoder.decode(body)
    except _UNREADABLE as exc:
        raise PayloadError([_unreadable(exc)]) from None
    columns, rows, locate = needed_columns(document, schema)
    inputs = build_inputs(columns, rows, schema, locate=locate)
    if typed_error is not None:
        # The typed decoder refused rows the general checks accept (e.g. an id that is a list).
        raise PayloadError([_typed_error(typed_error, schema)])
    return inputs


def _typed_error(message: str, schema: InputSchema) -> dict[str, Any]:
    """A msgspec refusal (``<what> - at `$.path```) as an error at its place in the body."""
    what, location = message.split(" - at ")[0], _msgspec_location(message)
    if what == limits.TOO_MANY_ROWS or what.startswith("Expected `array` of length <="):
        if location and isinstance(location[-1], int):
            location = location[:-1]  # the row that passed the limit: name the list
        return error(location, f"more than {schema.max_rows} rows; at most {schema.max_rows} per request", "too_long")
    return error(location, what, "type_error")


def _unreadable(exc: Exception) -> dict[str, Any]:
    """Why a body cannot be decoded at all, in one short line."""
    if isinstance(exc, RecursionError):
        return error([], "body nests arrays or objects too deeply to be decoded", "json_invalid")
    if isinstance(exc, UnicodeDecodeError):
        byte = exc.object[exc.start : exc.start + 1].hex()
        return error([], f"body is not valid UTF-8 ({exc.reason}: byte 0x{byte} in a string)", "utf8_invalid")
    return error([], f"body is not valid JSON: {exc}", "json_invalid")


def _msgspec_location(message: str) -> list[Any]:
    """``... - at `$.instances[3].customer_id``` -> ["instances", 3, "customer_id"]."""
    match = re.search(r"at `\$(.*)`$", message)
    if not match:
        return []
    path = match.group(1).replace("[...]", ".*")  # a key of a mapping (an inputs column): msgspec does not name it
    return [int(part) if part.isdigit() else part for part in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path)
            for part in part if part]  # fmt: skip


def _type_errors(values: list[Any], column: str, schema: InputSchema, locate: Locate) -> list[dict[str, Any]]:
    allowed, expected = schema.allowed_types(column)
    bad = [i for i, v in enumerate(values) if type(v) not in allowed]
    return [
        error(locate(i, column), f"expected {expected} or null, got {msgspec.json.encode(values[i]).decode()[:60]}",
               "type_error")
        for i in bad[:MAX_REPORTED_ERRORS]
    ]  # fmt: skip


def build_inputs(
    columns: dict[str, list[Any]],
    rows: int,
    schema: InputSchema,
    checked: bool = False,
    locate: Locate = lambda i, c: ["rows", i, c],
) -> ModelInputs:
    """Type-check the feature columns (unless ``checked``) and make log columns and ONNX feeds.

    ``locate(row, column)`` gives an error's place in the body (its shape decides the order).
    """
    errors: list[dict[str, Any]] = []
    features: dict[str, np.ndarray] = {}
    numeric = []
    for column in schema.numeric:
        if not checked and not set(map(type, columns[column])) <= schema.allowed_types(column)[0]:
            errors += _type_errors(columns[column], column, schema, locate)
        else:
            numeric.append(column)
    try:  # one array for all numeric inputs: one conversion and one range check, not one per column
        matrix = np.array([columns[c] for c in numeric], dtype=np.float64).reshape(len(numeric), rows)
    except OverflowError:
        errors.append(error([], "a number is too large for float64", "type_error"))
    else:
        features.update(zip(numeric, matrix, strict=True))
        if (np.abs(matrix) > limits.FLOAT32_MAX).any():
            errors += [error(p, m, "out_of_range") for p, m in limits.out_of_range(features, tuple(numeric), locate)]
    for column in schema.categorical:
        values = columns[column]
        if not checked and not set(map(type, values)) <= schema.allowed_types(column)[0]:
            errors += _type_errors(values, column, schema, locate)
            continue
        rules = schema.normalize.get(column, ())
        if rules or column in schema.coded_categories:
            cleaned = [clean_category(v, rules) for v in values]
        elif None in values:
            cleaned = [MISSING_CATEGORY if v is None else v for v in values]
        else:
            cleaned = values
        features[column] = np.array(cleaned, dtype=object)
    if errors:
        raise PayloadError(errors[:MAX_REPORTED_ERRORS])
    for name, tree in schema.derived:
        features[name] = derived_values(tree, features, rows)
    derived = tuple(name for name, _ in schema.derived)
    beyond = limits.out_of_range(features, derived, lambda i, c: ["derived", c, i]) if derived else []
    if beyond:
        raise PayloadError([error(place, message, "out_of_range") for place, message in beyond])
    feeds = {c: features[c].astype(np.float32).reshape(-1, 1) for c in schema.model_numeric}
    feeds.update({c: features[c].reshape(-1, 1) for c in schema.categorical})
    ids = columns.get(schema.id_column) if schema.id_column is not None else None
    return ModelInputs(rows=rows, features=features, feeds=feeds, ids=ids)
