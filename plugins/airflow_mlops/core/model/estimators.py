"""The estimator families a spec may name: one row per family, every fact about it in that row.

A family (random forest, ridge, ...) is one or two scikit-learn classes, a classifier and/or
a regressor, each with the name ``model.estimator`` (or a candidate's ``estimator``) uses for
it. The row also says what the rest of the package needs to know about the family, so the
sites that need it read it here instead of keeping a list of their own:

- ``training``: the spec name -> class allow-list (anything else must be a dotted path), and
  whether the family is tree-based (``model.preprocessing.scale: auto`` scales only
  non-tree models: trees ignore scale, and unscaled thresholds convert to ONNX exactly);
- ``registry.tracking``: the types beyond skops' defaults its fitted models hold
  (``trusted_types``): loading a model trusts exactly the union of these, never a list
  read from the artifact;
- ``packaging``: how its ONNX converter is found (``onnx_converter``: None for the classes
  skl2onnx converts itself; for other libraries, a callable that registers theirs);
- ``drafting``: the spec names of the families ``airflow-mlops init`` proposes.

Adding a family is one row here, the family's names in docs/spec.md (a unit test checks
the docs list every name) and nothing else: tests/unit/core/model/test_estimators.py builds
every row's estimators, logs them through skops with exactly the trusted types the row
declares, and checks their ONNX parity.

Pure Python: the classes are imported only when a name is resolved (task time), so the
registry module can be imported anywhere, e.g. by ``registry.tracking`` at module level.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, NamedTuple

TASKS = ("classification", "regression")
TREE = frozenset({"sklearn.tree._tree.Tree"})  # what a fitted scikit-learn tree (forest, boosting) holds


class Member(NamedTuple):
    """One class of a family: the name a spec uses for it and the class's import path."""

    name: str
    path: str


@dataclass(frozen=True)
class Family:
    """An estimator family: its classifier and/or regressor and what the package must know about it."""

    name: str
    classification: Member | None = None
    regression: Member | None = None
    tree_based: bool = False
    trusted_types: frozenset[str] = frozenset()  # skops types beyond the defaults that its models hold
    onnx_converter: str | None = None  # dotted path of a callable registering a skl2onnx converter

    def member(self, task: str) -> Member | None:
        return self.classification if task == "classification" else self.regression if task == "regression" else None

    def members(self) -> tuple[tuple[str, Member], ...]:
        """(task, member) for each task the family serves."""
        return tuple((task, m) for task in TASKS if (m := self.member(task)) is not None)


FAMILIES: tuple[Family, ...] = (
    Family(
        "logistic_regression", classification=Member("logistic_regression", "sklearn.linear_model.LogisticRegression")
    ),
    Family(
        "random_forest",
        classification=Member("random_forest", "sklearn.ensemble.RandomForestClassifier"),
        regression=Member("random_forest_regressor", "sklearn.ensemble.RandomForestRegressor"),
        tree_based=True,
        trusted_types=TREE,
    ),
    Family(
        "extra_trees",
        classification=Member("extra_trees", "sklearn.ensemble.ExtraTreesClassifier"),
        regression=Member("extra_trees_regressor", "sklearn.ensemble.ExtraTreesRegressor"),
        tree_based=True,
        trusted_types=TREE,
    ),
    Family(
        "hist_gradient_boosting",
        classification=Member("hist_gradient_boosting", "sklearn.ensemble.HistGradientBoostingClassifier"),
        regression=Member("hist_gradient_boosting_regressor", "sklearn.ensemble.HistGradientBoostingRegressor"),
        tree_based=True,
        trusted_types=frozenset({"sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"}),
    ),
    Family(
        "gradient_boosting",
        classification=Member("gradient_boosting", "sklearn.ensemble.GradientBoostingClassifier"),
        regression=Member("gradient_boosting_regressor", "sklearn.ensemble.GradientBoostingRegressor"),
        tree_based=True,
        trusted_types=TREE,
    ),
    Family(
        "decision_tree",
        classification=Member("decision_tree", "sklearn.tree.DecisionTreeClassifier"),
        regression=Member("decision_tree_regressor", "sklearn.tree.DecisionTreeRegressor"),
        tree_based=True,
        trusted_types=TREE,
    ),
    Family("linear_regression", regression=Member("linear_regression", "sklearn.linear_model.LinearRegression")),
    Family("ridge", regression=Member("ridge", "sklearn.linear_model.Ridge")),
    Family("lasso", regression=Member("lasso", "sklearn.linear_model.Lasso")),
    Family("elastic_net", regression=Member("elastic_net", "sklearn.linear_model.ElasticNet")),
)


def families() -> tuple[Family, ...]:
    """Every row (read at call time, so a test may add one)."""
    return FAMILIES


def family(name: str) -> Family:
    """The row called ``name``; KeyError names the known ones."""
    for row in families():
        if row.name == name:
            return row
    raise KeyError(f"no estimator family '{name}'; known: {sorted(f.name for f in families())}")


def names() -> list[str]:
    """Every name a spec may give ``estimator`` (besides a dotted path), sorted."""
    return sorted(m.name for row in families() for _, m in row.members())


def lookup(name: str) -> tuple[Family, str, Member] | None:
    """(family, task, member) of a spec's estimator name, or None (e.g. a dotted path)."""
    for row in families():
        for task, member in row.members():
            if member.name == name:
                return row, task, member
    return None


def spec_name(family_name: str, task: str) -> str:
    """The name a spec uses for ``family_name``'s estimator of ``task`` (the drafter's candidates)."""
    member = family(family_name).member(task)
    if member is None:
        raise KeyError(f"estimator family '{family_name}' has no {task} estimator")
    return member.name


def import_path(dotted: str) -> Any:
    """The object at ``dotted`` (``module.attribute``); ValueError when it cannot be imported."""
    module_name, _, attribute = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"cannot import estimator '{dotted}': {exc}") from exc


def resolve_estimator(name: str) -> type:
    """Look ``name`` up in the allow-list, or import the dotted path the spec author wrote."""
    from sklearn.base import BaseEstimator

    found = lookup(name)
    dotted = found[2].path if found else name
    if "." not in dotted:
        raise ValueError(f"unknown estimator '{name}'; use one of {names()} or a dotted path")
    cls = import_path(dotted)
    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
        raise ValueError(f"'{dotted}' is not a scikit-learn estimator class")
    return cls


def family_of(cls: type) -> Family | None:
    """The row whose classifier or regressor is ``cls`` (the class itself, not a subclass), or None."""
    for row in families():
        for _, member in row.members():
            if import_path(member.path) is cls:
                return row
    return None


def is_tree_based(cls: type) -> bool:
    """Whether ``cls`` is a tree model: its row says; a class outside the registry (a dotted path)
    counts as one when it comes from scikit-learn's tree or ensemble modules."""
    row = family_of(cls)
    if row is not None:
        return row.tree_based
    return cls.__module__.startswith(("sklearn.tree", "sklearn.ensemble"))


def trusted_types() -> frozenset[str]:
    """The skops types beyond the defaults that models of every family together need."""
    return frozenset().union(*(row.trusted_types for row in families()))


def register_onnx_converter(cls: type) -> None:
    """Register the skl2onnx converter of ``cls``'s family if the row names one (a no-op for
    the scikit-learn classes skl2onnx converts itself, and for classes outside the registry)."""
    row = family_of(cls)
    if row is not None and row.onnx_converter is not None:
        import_path(row.onnx_converter)()
