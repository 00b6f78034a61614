"""The training DAG's trigger form: fields, not ``{}``."""

from __future__ import annotations

import pytest

from tests.conftest import EXAMPLE_SPEC

pytestmark = pytest.mark.unit


def test_the_trigger_form_offers_force_retrain_and_a_reason(mlops_home):
    from airflow.serialization.serialized_objects import DagSerialization

    from airflow_mlops.factories.training import build_training_dag

    dag = build_training_dag(EXAMPLE_SPEC)
    params = dag.params
    assert sorted(params) == ["force_retrain", "reason"]
    force, reason = params.get_param("force_retrain"), params.get_param("reason")
    assert force.value is False and force.schema["type"] == "boolean" and "already learned" in force.description
    assert reason.value is None and reason.schema["type"] == ["null", "string"] and reason.schema["maxLength"] == 500
    assert params.validate() == {"force_retrain": False, "reason": None}  # a scheduled or asset run: the defaults
    # What the UI builds its form from: the serialized DAG keeps both fields with their schema.
    serialized = DagSerialization.to_dict(dag)["dag"]["params"]
    assert [name for name, _ in serialized] == ["force_retrain", "reason"]
