"""The model-input contract: which columns a model takes, how they are made, what ONNX calls them.

One place for what training, evaluation, ONNX packaging, batch scoring and the serving app
must agree on, so they cannot skew:

- the model inputs: the numeric features, then the derived ones, then the categorical ones;
- ``MISSING_CATEGORY``: how a missing category reaches the model ("" : both scikit-learn's
  imputer and the ONNX conversion understand it; string tensors cannot hold None);
- derived features: arithmetic over numeric features (``spec.check_arithmetic``), computed
  here on columns of any kind (a DataFrame, or a dict of arrays in the serving app);
- the names of the ONNX graph's inputs. The converter rewrites column names that are not
  identifiers (``mean radius`` becomes ``mean_radius``; ``a b`` and ``a_b`` cannot both keep
  their name), so the graph carries the mapping from the user's column names to its input
  names in its metadata (``ONNX_INPUTS_KEY``), and every feed is built through it. The class
  labels of a classifier travel the same way (``ONNX_CLASSES_KEY``).

NumPy only (plus the spec's parser): the serving app imports this module.
"""

from __future__ import annotations

import ast
import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from airflow_mlops.spec import PipelineSpec, check_arithmetic

MISSING_CATEGORY = ""
ONNX_INPUTS_KEY = "airflow_mlops.inputs"
ONNX_CLASSES_KEY = "airflow_mlops.classes"


@dataclass(frozen=True)
class NormalizeRule:
    """Text clean-up of one categorical column (``cleaning.normalize``), in the order the spec gives."""

    strip: bool
    lowercase: bool
    mapping: tuple[tuple[str, str], ...]

    @functools.cached_property
    def lookup(self) -> dict[str, str]:
        return dict(self.mapping)


@dataclass(frozen=True)
class InputContract:
    """What a model of a spec takes, in plain values (it is stored inside the registered model)."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    derived: tuple[tuple[str, str], ...]  # (name, expression)
    normalize: tuple[tuple[str, tuple[NormalizeRule, ...]], ...] = ()

    @classmethod
    def from_spec(cls, spec: PipelineSpec) -> InputContract:
        features = spec.data.features
        rules: dict[str, list[NormalizeRule]] = {}
        for rule in spec.cleaning.normalize:
            for column in rule.columns:
                rules.setdefault(column, []).append(
                    NormalizeRule(rule.strip, rule.lowercase, tuple(sorted(rule.mapping.items())))
                )
        return cls(
            numeric=tuple(features.numeric),
            categorical=tuple(features.categorical),
            derived=tuple(features.derived.items()),
            normalize=tuple((column, tuple(r)) for column, r in rules.items()),
        )

    @property
    def inputs(self) -> tuple[str, ...]:
        """The columns the data must hold."""
        return (*self.numeric, *self.categorical)

    @property
    def model_numeric(self) -> tuple[str, ...]:
        return (*self.numeric, *(name for name, _ in self.derived))

    @property
    def model_inputs(self) -> tuple[str, ...]:
        """Every column the model's Pipeline (and its ONNX graph) takes, in order."""
        return (*self.model_numeric, *self.categorical)

    def derived_trees(self) -> tuple[tuple[str, ast.Expression], ...]:
        return tuple((name, check_arithmetic(expression, set(self.numeric))) for name, expression in self.derived)

    def as_dict(self) -> dict[str, Any]:
        """Plain lists and dicts (what a skops-serialized transformer may hold)."""
        return {
            "numeric": list(self.numeric),
            "categorical": list(self.categorical),
            "derived": [list(pair) for pair in self.derived],
            "normalize": [
                [column, [[r.strip, r.lowercase, [list(m) for m in r.mapping]] for r in rules]]
                for column, rules in self.normalize
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputContract:
        return cls(
            numeric=tuple(data["numeric"]),
            categorical=tuple(data["categorical"]),
            derived=tuple((str(n), str(e)) for n, e in data["derived"]),
            normalize=tuple(
                (str(column), tuple(NormalizeRule(bool(s), bool(lo), tuple((str(a), str(b)) for a, b in m))
                                    for s, lo, m in rules))
                for column, rules in data["normalize"]
            ),
        )  # fmt: skip


def clean_category(value: Any, rules: Sequence[NormalizeRule]) -> str:
    """One category value as the model sees it: text, clean-up applied, "" when missing."""
    if value is None or (isinstance(value, float) and value != value):
        return MISSING_CATEGORY
    text = value if type(value) is str else str(value)
    for rule in rules:
        if rule.strip:
            text = text.strip()
        if rule.lowercase:
            text = text.lower()
        if rule.mapping:
            text = rule.lookup.get(text, text)
    return text


def derived_values(tree: ast.Expression, columns: Any, rows: int) -> np.ndarray:
    """A derived feature's values (float64); x/0 and overflow are missing, imputed like any gap.

    ``columns`` maps names to columns: a DataFrame, or a dict of arrays (the serving app).
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        values = np.broadcast_to(np.asarray(_arithmetic(tree.body, columns), dtype="float64"), (rows,))
    return np.where(np.isfinite(values), values, np.nan)


def _arithmetic(node: ast.expr, columns: Any) -> Any:
    """Evaluate a tree ``check_arithmetic`` accepted: numbers, column names, + - * /."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.Name):
        return np.asarray(columns[node.id], dtype="float64")
    if isinstance(node, ast.UnaryOp):
        value = _arithmetic(node.operand, columns)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        left, right = _arithmetic(node.left, columns), _arithmetic(node.right, columns)
        operations = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide}
        return operations[type(node.op)](left, right)
    raise ValueError(f"unsupported expression node {type(node).__name__}")


# -- ONNX graph input names ---------------------------------------------------------------


def graph_metadata(
    model_inputs: Sequence[str], graph_inputs: Sequence[str], classes: Sequence[Any] | None
) -> dict[str, str]:
    """The metadata an exported graph carries: user column -> graph input (by position), class labels."""
    if len(model_inputs) != len(graph_inputs):
        raise ValueError(f"the graph has {len(graph_inputs)} inputs for {len(model_inputs)} model inputs")
    metadata = {ONNX_INPUTS_KEY: json.dumps([[u, g] for u, g in zip(model_inputs, graph_inputs, strict=True)])}
    if classes is not None:
        metadata[ONNX_CLASSES_KEY] = json.dumps([_plain(c) for c in classes])
    return metadata


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def graph_input_names(metadata: Mapping[str, str], graph_inputs: Sequence[str]) -> dict[str, str]:
    """User column -> graph input name, from a graph's metadata.

    A graph exported before the mapping existed named its inputs after the columns: the
    mapping is then the identity. Raises ValueError when the metadata names inputs the graph
    does not have.
    """
    raw = metadata.get(ONNX_INPUTS_KEY)
    if raw is None:
        return {name: name for name in graph_inputs}
    mapping = {str(user): str(graph) for user, graph in json.loads(raw)}
    if sorted(mapping.values()) != sorted(graph_inputs):
        raise ValueError(f"the graph's metadata maps {sorted(mapping.values())}, its inputs are {sorted(graph_inputs)}")
    return mapping


def graph_classes(metadata: Mapping[str, str]) -> tuple[Any, ...] | None:
    """A classifier graph's class labels in the order of its probability columns, if recorded."""
    raw = metadata.get(ONNX_CLASSES_KEY)
    return None if raw is None else tuple(json.loads(raw))


def onnx_session(onnx_bytes: bytes, threads: int | None = None) -> Any:
    """An ONNX Runtime session on the CPU; ``threads`` caps its intra-op threads (serving: one
    graph run at a time per worker), None leaves ONNX Runtime's default."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # warnings about unused initializers are noise in task logs
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"])
