"""The model sections of the spec: ``promotion.requirements`` (latency, size and memory limits)."""

from __future__ import annotations

import pytest
import yaml

from airflow_mlops.spec import RequirementsSpec, SpecError, parse_spec
from tests.conftest import EXAMPLE_SPEC

pytestmark = pytest.mark.unit


def _spec_with(promotion: dict | None = None, packaging: dict | None = None) -> str:
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data["promotion"].update(promotion or {})
    if packaging is not None:
        data["packaging"] = packaging
    return yaml.safe_dump(data)


def test_requirements_default_to_measured_not_gated():
    spec = parse_spec(_spec_with())
    rules = spec.promotion.requirements
    assert (rules.batch_rows, rules.threads, rules.limits()) == (100, 1, {})


def test_limits_are_read_and_listed():
    spec = parse_spec(_spec_with({"requirements": {"max_p99_latency_ms": 5, "max_model_mb": 20.5, "batch_rows": 500}}))
    assert spec.promotion.requirements.limits() == {"max_p99_latency_ms": 5.0, "max_model_mb": 20.5}
    assert spec.promotion.requirements.batch_rows == 500


@pytest.mark.parametrize(
    ("requirements", "message"),
    [
        ({"max_p99_latency_ms": 0}, "promotion.requirements.max_p99_latency_ms: Input should be greater than 0"),
        ({"max_model_mb": -1}, "promotion.requirements.max_model_mb: Input should be greater than 0"),
        ({"batch_rows": 1}, "promotion.requirements.batch_rows: Input should be greater than or equal to 2"),
        ({"threads": 0}, "promotion.requirements.threads: Input should be greater than or equal to 1"),
        ({"max_latency": 5}, "promotion.requirements.max_latency: unknown field"),
        ({"max_onnx_mb": "small"}, "promotion.requirements.max_onnx_mb: Input should be a valid number"),
    ],
)
def test_a_bad_requirement_is_refused_naming_the_field(requirements, message):
    with pytest.raises(SpecError) as error:
        parse_spec(_spec_with({"requirements": requirements}), "churn.yaml")
    assert message in str(error.value)


def test_a_limit_on_the_onnx_graph_needs_a_graph():
    text = _spec_with({"requirements": {"max_p99_latency_ms": 5}}, packaging={"onnx": "off"})
    with pytest.raises(SpecError, match=r"\['max_p99_latency_ms'\] measure the ONNX graph, and packaging.onnx is off"):
        parse_spec(text)
    # The model folder's size needs no graph.
    assert parse_spec(_spec_with({"requirements": {"max_model_mb": 5}}, packaging={"onnx": "off"}))


def test_the_limits_are_part_of_the_fingerprint():
    # A new limit makes the next run train and gate again instead of skipping as already trained.
    plain, limited = parse_spec(_spec_with()), parse_spec(_spec_with({"requirements": {"max_onnx_mb": 1}}))
    assert plain.fingerprint() != limited.fingerprint()
    assert RequirementsSpec().model_dump()["max_model_mb"] is None
