"""The estimator-family registry: every row builds, logs through skops with exactly the types it
declares, converts to ONNX with parity, and the sites (training, packaging, docs) read it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import is_classifier, is_regressor
from sklearn.linear_model import LogisticRegression

from airflow_mlops.core.data import synthetic
from airflow_mlops.core.model import estimators
from airflow_mlops.core.model.packaging import OnnxExportError, export_onnx, onnx_parity
from airflow_mlops.core.model.training import build_pipeline, fit, resolve_estimator
from airflow_mlops.core.registry import tracking
from airflow_mlops.spec import ModelSpec

pytestmark = pytest.mark.unit

DOCS_SPEC = Path(__file__).resolve().parents[4] / "docs" / "spec.md"
MEMBERS = [(row, task, member) for row in estimators.FAMILIES for task, member in row.members()]
PIPELINE_TYPES = {"numpy.dtype"}  # what every Pipeline holds, whatever the estimator


def _task_spec(spec, task, estimator, params=None):
    return spec.model_copy(update={"model": ModelSpec(task=task, estimator=estimator, params=params or {})})


def _small(row: estimators.Family) -> dict:
    """Few trees: the test checks what a family is, not how well it learns."""
    if not row.tree_based:
        return {}
    params = {"n_estimators": 8, "max_iter": 15}
    cls = estimators.import_path((row.classification or row.regression).path)  # type: ignore[union-attr]
    return {k: v for k, v in params.items() if k in cls().get_params()}


def _frames(task):
    train, test = synthetic.churn_batch(400, seed=1), synthetic.churn_batch(200, seed=2)
    test.loc[:10, "plan"] = None  # missing categories and numbers travel as "" and NaN
    test.loc[:10, "usage_gb"] = np.nan
    if task == "regression":
        for frame in (train, test):
            frame["churned"] = frame["monthly_charges"].fillna(50.0) * 1.5 + frame["tenure_months"]
    return train, test


@pytest.mark.parametrize(("row", "task", "member"), MEMBERS, ids=[m.name for _, _, m in MEMBERS])
def test_every_row_fits_logs_with_its_trusted_types_and_converts_with_parity(spec, tmp_path, row, task, member):
    import skops.io

    task_spec = _task_spec(spec, task, member.name, _small(row))
    train, test = _frames(task)
    model = fit(train, task_spec)
    estimator = model.named_steps["estimator"]
    assert (is_classifier if task == "classification" else is_regressor)(estimator)
    assert estimators.family_of(type(estimator)) is row
    scaled = [name for name, _, _ in model.named_steps["preprocess"].transformers if name.startswith("numeric")]
    numeric_steps = [model.named_steps["preprocess"].named_transformers_[name] for name in scaled]
    assert all(("scale" in step.named_steps) is (not row.tree_based) for step in numeric_steps)  # scale: auto

    # skops: the row lists exactly what its models need beyond the Pipeline's own, and loading trusts it.
    path = tmp_path / "model.skops"
    skops.io.dump(model, path)
    assert set(skops.io.get_untrusted_types(file=path)) == PIPELINE_TYPES | row.trusted_types
    loaded = tracking.load_skops_file(str(path), member.name)
    report = onnx_parity(loaded, export_onnx(loaded, task_spec), test, task_spec)
    assert report.passed and report.labels_agree == 1.0, report.as_dict()


def test_names_are_unique_and_resolve_to_their_members_class():
    assert len(estimators.names()) == len(MEMBERS) == len(set(estimators.names()))
    assert len({row.name for row in estimators.FAMILIES}) == len(estimators.FAMILIES)
    for row, task, member in MEMBERS:
        assert estimators.lookup(member.name) == (row, task, member)
        assert resolve_estimator(member.name) is estimators.import_path(member.path)
        assert estimators.spec_name(row.name, task) == member.name
    assert estimators.lookup("sklearn.tree.DecisionTreeClassifier") is None
    assert estimators.trusted_types() | PIPELINE_TYPES <= tracking.TRUSTED_TYPES
    with pytest.raises(KeyError, match="has no regression estimator"):
        estimators.spec_name("logistic_regression", "regression")


def test_a_dotted_path_outside_the_registry_is_judged_by_its_module():
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.tree import ExtraTreeClassifier

    assert estimators.family_of(ExtraTreeClassifier) is None and estimators.is_tree_based(ExtraTreeClassifier)
    assert not estimators.is_tree_based(KNeighborsClassifier)


def test_docs_list_every_name_of_the_registry():
    """docs/spec.md's ``model.estimator`` row names exactly the registry's names."""
    (line,) = [
        line for line in DOCS_SPEC.read_text(encoding="utf-8").splitlines() if line.startswith("| `model.estimator`")
    ]
    listed = re.findall(r"`([a-z_]+)`", line.split("Classification:", 1)[1])
    assert sorted(listed) == estimators.names()


class OwnLogistic(LogisticRegression):
    """A class skl2onnx has no converter for: stands in for a family from another library."""


def register_own_logistic() -> None:
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
    from skl2onnx.operator_converters.linear_classifier import convert_sklearn_linear_classifier

    options = {"zipmap": [True, False, "columns"], "nocl": [True, False], "raw_scores": [True, False]}
    update_registered_converter(
        OwnLogistic, "OwnLogistic", calculate_linear_classifier_output_shapes, convert_sklearn_linear_classifier,
        options={**options, "output_class_labels": [False, True]},
    )  # fmt: skip


def test_a_new_row_is_all_the_sites_need(spec, monkeypatch):
    """One added row: its name resolves, its tree flag decides scaling, its converter is registered."""
    own = estimators.Family(
        "own",
        classification=estimators.Member("own_logistic", f"{__name__}.OwnLogistic"),
        tree_based=True,  # says "do not scale", whatever the module
        onnx_converter=f"{__name__}.register_own_logistic",
    )
    task_spec = _task_spec(spec, "classification", "own_logistic", {"max_iter": 300})
    train, test = _frames("classification")
    dotted = _task_spec(spec, "classification", f"{__name__}.OwnLogistic", {"max_iter": 300})
    with pytest.raises(OnnxExportError, match="cannot convert OwnLogistic"):
        export_onnx(fit(train, dotted), dotted)
    with pytest.raises(ValueError, match="unknown estimator 'own_logistic'"):
        build_pipeline(task_spec)

    monkeypatch.setattr(estimators, "FAMILIES", (*estimators.FAMILIES, own))
    assert "own_logistic" in estimators.names()
    model = fit(train, task_spec)
    assert type(model.named_steps["estimator"]) is OwnLogistic
    numeric = model.named_steps["preprocess"].named_transformers_["numeric_0"]
    assert "scale" not in numeric.named_steps
    report = onnx_parity(model, export_onnx(model, task_spec), test, task_spec)
    assert report.passed, report.as_dict()
