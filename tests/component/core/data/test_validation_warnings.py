"""Validation warnings reach the model version: a tag listing them, the model card, the gate's
reasons; and with promotion.block_on_validation_warnings they block promotion."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_mlops import layout
from airflow_mlops.core.data import stages as data_stages
from airflow_mlops.core.data import synthetic
from airflow_mlops.core.io import tables
from airflow_mlops.core.landing import inbox as landing
from airflow_mlops.core.model import release
from airflow_mlops.core.model import stages as model_stages
from airflow_mlops.core.registry.client import Registry
from airflow_mlops.spec import parse_spec

pytestmark = pytest.mark.component

SPEC = """
name: churn
data:
  id_column: customer_id
  label: churned
  dtypes: {churned: int}
  features:
    numeric: [tenure_months, monthly_charges, support_calls, usage_gb]
    categorical: [plan, region, payment_method]
validation:
  min_rows: 100
  expectations:
    - type: expect_column_values_to_be_in_set
      kwargs: {column: plan, value_set: [basic, standard, premium]}
      severity: warning
model: {estimator: logistic_regression, params: {max_iter: 300}}
packaging: {onnx: "off"}
promotion: {metric: roc_auc, thresholds: {roc_auc: 0.55}, block_on_validation_warnings: %s}
"""


@pytest.fixture
def registry(mlops_home):
    return Registry(f"sqlite:///{mlops_home}/mlflow.db")


def _land_with_an_unseen_category(spec) -> None:
    """A batch whose plan is a category never declared on 8% of its rows."""
    inbox = layout.landing_dir(spec.name, "training")
    landed = synthetic.land_batch("churn", inbox, dt.date(2026, 1, 1), 1000, seed=3)
    frame = tables.read_table(landed.uri)
    frame.loc[frame.index[:80], "plan"] = "enterprise"
    tables.write_parquet(frame, landed.uri)
    landing.claim_new_files(inbox, layout.lake_dir(spec.name, "labeled"), (".parquet",))


def _train(spec, registry: Registry) -> tuple[dict, dict]:
    run_id = "run-1"
    lineage = {"dag_id": "churn_training", "run_id": run_id}
    dataset = data_stages.ingest_labeled(spec, run_id)
    validation = data_stages.validate_dataset(spec, dataset, run_id)
    split = data_stages.split_dataset(spec, dataset, run_id)
    training = model_stages.train_model(spec, registry, split, dataset, lineage)
    evaluation = model_stages.evaluate_candidate(spec, registry, training, split["test"]["uri"])
    registered = release.register_candidate(
        spec, registry, training, evaluation, dataset, split, lineage, None, validation
    )
    gate = release.gate_candidate(spec, registry, registered, evaluation, None, validation)
    return validation, gate


def test_a_warning_is_tagged_on_the_version_listed_in_its_card_and_named_by_the_gate(registry):
    spec = parse_spec(SPEC % "false")
    _land_with_an_unseen_category(spec)
    validation, gate = _train(spec, registry)
    assert validation["warnings"] == 1 and set(validation) >= {"report_uri"}  # XCom: a count and a reference
    assert gate["promote"]  # a warning does not block by default ...
    (reason,) = [r for r in gate["reasons"] if r.startswith("validation:")]  # ... but the gate names it
    assert "expect_column_values_to_be_in_set on 'plan': 8.0% unexpected (80 rows)" in reason
    assert "e.g. enterprise" in reason and "not blocking" in reason
    version = registry.client.get_model_version(spec.registered_model_name, gate["version"])
    assert version.tags["validation_warnings"] == "1"
    assert "'plan': 8.0% unexpected" in version.tags["validation_warning_list"]
    assert version.tags["validation_report"] == validation["report_uri"]
    assert "## Validation warnings" in version.description and "enterprise" in version.description
    assert "validation: 1 warning(s)" in version.tags["gate_reasons"]


def test_with_block_on_validation_warnings_a_warning_fails_the_gate(registry):
    spec = parse_spec(SPEC % "true")
    _land_with_an_unseen_category(spec)
    _, gate = _train(spec, registry)
    assert not gate["promote"]
    assert gate["reasons"][0].startswith("validation: 1 warning(s) on the training data")
    assert "block promotion" in gate["reasons"][0] and "all gates passed" not in gate["reasons"]
    version = registry.client.get_model_version(spec.registered_model_name, gate["version"])
    assert version.tags["gate"] == "failed" and "**Gate: failed.**" in version.description
    with pytest.raises(ValueError, match="did not pass the gate"):
        release.promote_candidate(registry, gate, by="test")


def test_clean_data_says_so_on_the_card_and_adds_no_reason(registry):
    spec = parse_spec(SPEC % "true")
    inbox = layout.landing_dir(spec.name, "training")
    synthetic.land_batch("churn", inbox, dt.date(2026, 1, 1), 1000, seed=3)
    landing.claim_new_files(inbox, layout.lake_dir(spec.name, "labeled"), (".parquet",))
    _, gate = _train(spec, registry)
    assert gate["promote"] and not any(r.startswith("validation:") for r in gate["reasons"])
    version = registry.client.get_model_version(spec.registered_model_name, gate["version"])
    assert version.tags["validation_warnings"] == "0" and version.tags["validation_warning_list"] == "none"
    assert "every warning-level expectation passed" in version.description


def test_observed_values_reach_tags_and_reasons_short_and_escaped():
    from airflow_mlops.core.data.validation import carried_warnings as validation_warnings

    warning = {
        "expectation": "expect_column_values_to_be_in_set",
        "column": "plan",
        "observed": {
            "unexpected_percent": 8.0,
            "unexpected_count": 80,
            "partial_unexpected_list": ["root:x:0:0\nsecond line", "x" * 500, "b", "c", "d"],
        },
    }
    line = validation_warnings.describe(warning)
    assert "\n" not in line and "root:x:0:0\\nsecond line" in line
    examples = line.split("e.g. ", 1)[1].split(", ")
    assert len(examples) == 3 and examples[2] == "b"  # three examples at most
    assert examples[1] == "x" * 37 + "..."  # each cut short
    tags = validation_warnings.version_tags({"report_uri": "/r.json", "warnings": 1}, [warning] * 50)
    assert len(tags["validation_warning_list"]) <= validation_warnings.MAX_TAG_CHARS
    assert "(see the report: 50 in all)" in tags["validation_warning_list"]


def test_a_counted_warning_whose_report_is_gone_is_still_a_warning(tmp_path):
    from airflow_mlops.core.data.validation import carried_warnings as validation_warnings

    warnings = validation_warnings.load({"report_uri": str(tmp_path / "gone.json"), "warnings": 2})
    assert len(warnings) == 1 and "unreadable" in validation_warnings.describe(warnings[0])
    assert validation_warnings.load(None) == [] and validation_warnings.version_tags(None, []) == {}


def test_a_landed_batchs_own_warnings_reach_the_version_like_the_windows(tmp_path):
    """validation.batches counts its warnings in the result; they must be listed, not read as a lost report."""
    import json

    from airflow_mlops.core.data.validation import carried_warnings as validation_warnings

    report = tmp_path / "report.json"
    report.write_text(
        json.dumps({"warnings": [], "batch_warnings": {"/lake/b-1.csv": ["lacks label class(es) ['2']"]}})
    )
    warnings = validation_warnings.load({"report_uri": str(report), "warnings": 1})
    assert [validation_warnings.describe(w) for w in warnings] == ["landed batch: b-1.csv: lacks label class(es) ['2']"]
    tags = validation_warnings.version_tags({"report_uri": str(report), "warnings": 1}, warnings)
    assert tags["validation_warnings"] == "1" and "b-1.csv" in tags["validation_warning_list"]


def test_the_training_dag_hands_the_validate_result_to_register_and_gate(tmp_path, mlops_home):
    from airflow_mlops.factories.training import build_training_dag
    from tests.conftest import EXAMPLE_SPEC

    dag = build_training_dag(EXAMPLE_SPEC)
    for consumer in ("model.register", "model.gate"):
        reference = dag.get_task(consumer).validation  # the validate task's .output
        assert (reference.operator.task_id, reference.key) == ("data.validate", "return_value")
    assert "validation" in dag.get_task("model.gate").template_fields
