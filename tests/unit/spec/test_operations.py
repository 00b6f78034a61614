"""The monitoring fields of slices and of the estimate without labels: defaults, bounds, cross-checks."""

from __future__ import annotations

import pytest
import yaml

from airflow_mlops.spec import SpecError, load_spec
from tests.conftest import EXAMPLE_SPEC

pytestmark = pytest.mark.unit


def _load(tmp_path, slices: bool = False, **monitoring):
    raw = yaml.safe_load(EXAMPLE_SPEC.read_text())
    raw["monitoring"].update(monitoring)
    if slices:
        raw["evaluation"] = {"slices": ["region"]}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_spec(path)


def test_defaults_report_slices_and_estimates_without_requesting_retraining(tmp_path):
    monitoring = _load(tmp_path).monitoring
    assert (monitoring.max_slice_metric_drop, monitoring.min_slice_rows) == (0.1, 100)
    assert not monitoring.retrain_on_slice_decay and not monitoring.use_estimate
    assert (monitoring.estimated_metric_drop, monitoring.max_calibration_error) == (0.05, 0.05)


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"max_slice_metric_drop": -0.1}, "monitoring.max_slice_metric_drop", "greater than or equal to 0"),
        ({"min_slice_rows": 0}, "monitoring.min_slice_rows", "greater than or equal to 1"),
        ({"max_calibration_error": 0}, "monitoring.max_calibration_error", "greater than 0"),
        ({"estimated_metric_drop": -1}, "monitoring.estimated_metric_drop", "greater than or equal to 0"),
        ({"use_estimate": "sometimes"}, "monitoring.use_estimate", "valid boolean"),
        ({"retrain_on_slice_decay": True}, "<root>", "needs evaluation.slices"),
        ({"max_slice_drop": 0.1}, "monitoring.max_slice_drop", "unknown field"),
    ],
)
def test_invalid_monitoring_fields_name_the_field(tmp_path, fields, field, fragment):
    with pytest.raises(SpecError) as err:
        _load(tmp_path, **fields)
    assert f"  - {field}: " in str(err.value) and fragment in str(err.value)


def test_retraining_on_slice_decay_with_slices_loads(tmp_path):
    assert _load(tmp_path, retrain_on_slice_decay=True, slices=True).monitoring.retrain_on_slice_decay


def test_use_estimate_needs_a_classifier(tmp_path):
    raw = yaml.safe_load(EXAMPLE_SPEC.read_text())
    raw["model"] = {"task": "regression", "estimator": "ridge"}
    raw["promotion"] = {"metric": "rmse"}
    raw["validation"]["expectations"] = []
    raw["monitoring"]["use_estimate"] = True
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match="use_estimate: the estimate without labels reads class probabilities"):
        load_spec(path)
