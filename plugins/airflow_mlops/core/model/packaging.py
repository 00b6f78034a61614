"""Packaging a trained Pipeline as ONNX, checked for parity with scikit-learn.

The ONNX graph takes one input per model input column (numbers, derived ones included,
as float32; text as strings, ``""`` for a missing category; ``onnx_feeds`` builds them)
and returns the label and, for classifiers, the class probabilities. The converter renames
columns that are not identifiers (``mean radius`` -> ``mean_radius``), so the graph's
metadata maps each column to its input name and lists the class labels
(``core.model.features``); every feed is keyed through that mapping. It is only trusted
after ``onnx_parity`` compared its scores with the scikit-learn model's on the hold-out
test split: a gap above ``PARITY_TOLERANCE`` fails the promotion gate.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlops.core.contracts import OnnxParity
from airflow_mlops.core.model.estimators import register_onnx_converter
from airflow_mlops.core.model.features import graph_input_names, graph_metadata, onnx_session
from airflow_mlops.core.model.training import feature_frame
from airflow_mlops.spec import PipelineSpec

PARITY_TOLERANCE = 1e-4
ONNX_OPSETS = {"": 18, "ai.onnx.ml": 3}


class OnnxExportError(RuntimeError):
    """The Pipeline could not be converted to ONNX."""


@contextmanager
def _integer_attribute_lists() -> Iterator[None]:
    """Give protobuf plain ints where skl2onnx passes NumPy booleans or small ints in attribute lists.

    skl2onnx 1.20 builds HistGradientBoosting's ``nodes_missing_value_tracks_true`` from
    NumPy booleans, which protobuf 7 refuses ("Expected an int, got a boolean"). The
    patch lasts for one conversion and only rewrites the booleans inside attribute lists.
    """
    from skl2onnx.common._container import ModelComponentContainer

    original = ModelComponentContainer.add_node

    def add_node(self: Any, op_type: Any, inputs: Any, outputs: Any, *args: Any, **attrs: Any) -> Any:
        for key, value in attrs.items():
            if isinstance(value, list | tuple) and any(isinstance(v, bool | np.bool_) for v in value):
                attrs[key] = [int(v) if isinstance(v, bool | np.bool_) else v for v in value]
        return original(self, op_type, inputs, outputs, *args, **attrs)

    ModelComponentContainer.add_node = add_node  # type: ignore[method-assign]
    try:
        yield
    finally:
        ModelComponentContainer.add_node = original  # type: ignore[method-assign]


def onnx_inputs(spec: PipelineSpec) -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    numeric = [(c, FloatTensorType([None, 1])) for c in spec.data.features.model_numeric]
    return numeric + [(c, StringTensorType([None, 1])) for c in spec.data.features.categorical]


def export_onnx(model: Any, spec: PipelineSpec) -> bytes:
    """The fitted Pipeline as a serialized ONNX model (no ZipMap: probabilities as a tensor).

    The graph's metadata maps the spec's model inputs to the graph's input names (by
    position: the converter keeps the order of ``onnx_inputs``) and, for a classifier,
    lists its class labels in the order of the probability columns.
    """
    from skl2onnx import convert_sklearn

    options = {id(model): {"zipmap": False}} if spec.model.task == "classification" else None
    try:
        register_onnx_converter(type(model[-1]))  # a family from outside scikit-learn brings its converter
        with _integer_attribute_lists():
            graph = convert_sklearn(model, initial_types=onnx_inputs(spec), target_opset=ONNX_OPSETS, options=options)
    except Exception as exc:  # skl2onnx raises many types; all mean "this Pipeline has no ONNX form"
        raise OnnxExportError(f"cannot convert {type(model[-1]).__name__} to ONNX: {exc}") from exc
    classes = getattr(model, "classes_", None) if spec.model.task == "classification" else None
    try:
        metadata = graph_metadata(
            spec.data.features.model_inputs,
            [i.name for i in graph.graph.input],
            None if classes is None else list(classes),
        )
    except ValueError as exc:
        raise OnnxExportError(f"the exported graph does not fit the spec's model inputs: {exc}") from exc
    for key, value in metadata.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    return bytes(graph.SerializeToString())


def session_input_names(session: Any) -> dict[str, str]:
    """Model input column -> graph input name of a loaded ONNX Runtime session."""
    return graph_input_names(session.get_modelmeta().custom_metadata_map, [i.name for i in session.get_inputs()])


def onnx_feeds(frame: pd.DataFrame, spec: PipelineSpec, names: dict[str, str]) -> dict[str, np.ndarray]:
    """ONNX Runtime inputs for ``frame``: one (n, 1) array per model input, keyed by graph input
    name (``names``: ``session_input_names``)."""
    return _feeds(feature_frame(frame, spec), spec, names)


def _feeds(features: pd.DataFrame, spec: PipelineSpec, names: dict[str, str]) -> dict[str, np.ndarray]:
    """ONNX Runtime inputs from model inputs ``feature_frame`` already built."""
    numeric, categorical = spec.data.features.model_numeric, spec.data.features.categorical
    feeds = {names[c]: features[c].to_numpy(dtype=np.float32).reshape(-1, 1) for c in numeric}
    feeds.update({names[c]: features[c].to_numpy(dtype=object).reshape(-1, 1) for c in categorical})
    return feeds


def scores(model: Any, features: pd.DataFrame, task: str) -> np.ndarray:
    """What parity compares: class probabilities, or the regression output."""
    if task == "classification" and hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(features), dtype=np.float64)
    return np.asarray(model.predict(features), dtype=np.float64).reshape(-1, 1)


def onnx_scores(outputs: list[Any], task: str) -> np.ndarray:
    """What parity compares, from the outputs of one ``session.run``."""
    if task == "classification" and len(outputs) > 1:
        return np.asarray(outputs[1], dtype=np.float64)
    return np.asarray(outputs[0], dtype=np.float64).reshape(-1, 1)


@dataclass
class ParityReport:
    """How far ONNX Runtime's scores are from scikit-learn's, row by row.

    Class probabilities must agree within ``PARITY_TOLERANCE`` absolutely. Regression
    outputs are compared within ``PARITY_TOLERANCE`` times ``max(1, |prediction|)``: ONNX
    computes in float32, whose resolution grows with the magnitude (0.03 near 300,000),
    so an absolute bound would refuse every model of large targets.
    """

    rows: int
    max_abs_diff: float
    rows_over_tolerance: int
    labels_agree: float
    tolerance: float = PARITY_TOLERANCE
    relative: bool = False
    max_scaled_diff: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.rows > 0 and self.rows_over_tolerance == 0 and np.isfinite(self.max_abs_diff))

    def as_dict(self) -> OnnxParity:
        return {
            "rows": self.rows,
            "max_abs_diff": self.max_abs_diff,
            "max_scaled_diff": self.max_scaled_diff,
            "relative_to_magnitude": self.relative,
            "rows_over_tolerance": self.rows_over_tolerance,
            "labels_agree": self.labels_agree,
            "tolerance": self.tolerance,
            "passed": self.passed,
        }


def onnx_parity(model: Any, onnx_bytes: bytes, frame: pd.DataFrame, spec: PipelineSpec) -> ParityReport:
    """Compare the ONNX model's scores and labels with the scikit-learn model's on ``frame``.

    Raises ``OnnxExportError`` when ONNX Runtime cannot load or run the graph.
    """
    features = feature_frame(frame, spec)
    try:
        session = onnx_session(onnx_bytes)
        outputs = session.run(None, _feeds(features, spec, session_input_names(session)))
        got = onnx_scores(outputs, spec.model.task)
        labels = np.asarray(outputs[0]).reshape(-1)
    except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidArgument, ...)
        raise OnnxExportError(f"ONNX Runtime cannot run the exported graph: {exc}") from exc
    expected = scores(model, features, spec.model.task)
    if got.shape != expected.shape:
        raise OnnxExportError(f"ONNX output shape {got.shape} differs from scikit-learn's {expected.shape}")
    relative = spec.model.task == "regression"
    gaps = np.abs(got - expected)
    scale = np.maximum(1.0, np.abs(expected)) if relative else np.ones_like(expected)
    per_row = gaps.max(axis=1) if len(expected) else np.zeros(0)
    scaled = (gaps / scale).max(axis=1) if len(expected) else np.zeros(0)
    predicted = np.asarray(model.predict(features)).reshape(-1)
    if spec.model.task == "classification":
        agree = float(np.mean(labels.astype(str) == predicted.astype(str))) if len(labels) else 0.0
    else:
        close = np.abs(labels.astype(float) - predicted.astype(float)) <= PARITY_TOLERANCE * np.maximum(
            1.0, np.abs(predicted.astype(float))
        )
        agree = float(np.mean(close)) if len(labels) else 0.0
    return ParityReport(
        rows=len(expected),
        max_abs_diff=float(per_row.max()) if len(per_row) else float("nan"),
        rows_over_tolerance=int((~(scaled <= PARITY_TOLERANCE)).sum()),  # NaN counts as over
        labels_agree=agree,
        relative=relative,
        max_scaled_diff=float(scaled.max()) if len(scaled) else float("nan"),
    )
