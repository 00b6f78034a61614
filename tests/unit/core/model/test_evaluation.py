"""Evaluation plots: titles name classes the way people write them."""

from __future__ import annotations

import numpy as np
import pytest

from airflow_mlops.core.data import synthetic
from airflow_mlops.core.model.evaluation import class_label, render_plots
from airflow_mlops.core.model.training import fit

pytestmark = pytest.mark.unit


def test_a_numpy_class_is_written_as_its_value():
    assert class_label(np.int64(1)) == "1"
    assert class_label(np.str_("yes")) == "yes"
    assert class_label(True) == "True" and class_label("churned") == "churned"


def test_the_roc_and_pr_plots_name_the_positive_class_plainly(spec, tmp_path, monkeypatch):
    import matplotlib.axes

    titles: list[str] = []
    set_title = matplotlib.axes.Axes.set_title

    def recording(self: matplotlib.axes.Axes, label: str, *args: object, **kwargs: object) -> object:
        titles.append(label)
        return set_title(self, label, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", recording)
    frame = synthetic.churn_batch(600, seed=1)
    model = fit(frame, spec, "logistic_regression", {"max_iter": 200})
    assert isinstance(model.classes_[1], np.integer)  # the labels are numpy integers, as in every run
    paths = render_plots(model, frame, spec, {}, str(tmp_path))
    assert {p.rsplit("/", 1)[-1] for p in paths} == {"confusion_matrix.png", "roc_curve.png", "pr_curve.png"}
    assert "ROC curve (positive class 1)" in titles and "Precision-recall curve (positive class 1)" in titles
