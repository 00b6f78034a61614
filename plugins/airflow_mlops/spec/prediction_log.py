"""The prediction log's schema, defined once: its columns, their order and types.

The log is a public contract: users join delayed labels to it by ``request_id`` (+ ``row``) or
the id column, and monitoring reads it back. Two writers produce it, the serving app's buffered
logger (``core.operations.prediction_log.writer``) and batch scoring
(``core.operations.prediction_log.batch``); ``tests/unit/core/operations/test_prediction_log_schema.py``
checks both against this definition, and the spec reserves these names so that no feature or id
column can overwrite one of them. Plain Python (no pyarrow): the spec is loaded at DAG parse time.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LogColumn:
    """One fixed column of the log: its name, its Arrow type (as ``str(pyarrow type)``), what it holds.

    ``string`` stands for Arrow string or large_string: Parquet stores both as UTF-8 text and the
    readers take either.
    """

    name: str
    arrow_type: str
    meaning: str
    serving_only: bool = False
    optional: bool = False  # written only when the model has it (scores, more than two classes)


# Before the id column and the model inputs.
LEADING_COLUMNS: tuple[LogColumn, ...] = (
    LogColumn("request_id", "string", "the id the server (or batch scoring) gave the request; labels join by it"),
    LogColumn("client_request_id", "string", "the client's X-Request-ID, null without one", serving_only=True),
    LogColumn("row", "int64", "the row's index in its request (batch rows are one-row requests: 0)"),
    LogColumn("logged_at", "timestamp[us, tz=UTC]", "when the prediction was made"),
    LogColumn("model_name", "string", "the registered model's name"),
    LogColumn("model_version", "string", "the version that answered"),
    LogColumn(
        "source_uri",
        "string",
        "what made the prediction: 'serving', 'shadow' (a challenger scored in shadow: its answer went to nobody, "
        "and no reader of a champion's rows takes it) or the scored input's URI",
    ),
)
# After them. ``prediction`` has the type of the model's labels (numbers or text).
TRAILING_COLUMNS: tuple[LogColumn, ...] = (
    LogColumn("prediction", "<label type>", "the model's answer"),
    LogColumn("score", "double", "classification: P(second class) of two, else P(predicted class)", optional=True),
    LogColumn(
        "probabilities", "map<string, double>", "more than two classes: class label -> probability", optional=True
    ),
)
FEATURE_TYPES = {"numeric": "double", "categorical": "string"}  # model inputs; "" is a missing category
SHADOW_SOURCE = "shadow"  # source_uri of the rows a challenger scored in shadow (``serving.shadow``)
KEY_COLUMNS = ("request_id", "row")  # what a request-keyed label joins on

RESERVED_COLUMNS = frozenset(column.name for column in (*LEADING_COLUMNS, *TRAILING_COLUMNS))


def log_columns(
    id_column: str | None,
    inputs: list[str],
    *,
    serving: bool,
    score: bool,
    probabilities: bool,
) -> list[str]:
    """The log's column names in their order, for one pipeline and model.

    The id column (when the spec has one) follows the leading columns, then the model inputs in
    the writer's order (the serving logger: numbers, then categories; batch scoring: the model's
    input order), then the outputs.
    """
    wanted = {"score": score, "probabilities": probabilities}
    leading = [c.name for c in LEADING_COLUMNS if serving or not c.serving_only]
    trailing = [c.name for c in TRAILING_COLUMNS if not c.optional or wanted[c.name]]
    return [*leading, *([id_column] if id_column else []), *inputs, *trailing]
