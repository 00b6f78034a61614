"""`schedule`: the message queue and code-change fields, and the training fingerprint (what counts as a change)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from airflow_mlops.spec import SpecError, parse_spec
from airflow_mlops.spec.pipeline import TRAINING_FIELDS
from airflow_mlops.spec.schedule import QUEUE_SCHEMES, MessageQueueSpec

pytestmark = pytest.mark.unit

CHURN = Path(__file__).resolve().parents[3] / "include" / "pipelines" / "churn.yaml"


def _raw() -> dict:
    return yaml.safe_load(CHURN.read_text())


def _spec(raw: dict):
    return parse_spec(yaml.safe_dump(raw), source="churn.yaml")


def test_on_message_maps_queue_and_connection_to_the_schemes_trigger_arguments():
    assert MessageQueueSpec(scheme="redis+list", queue="mlops:churn").trigger_kwargs() == {
        "scheme": "redis+list", "key": "mlops:churn", "redis_conn_id": "redis_default"}  # fmt: skip
    pubsub = MessageQueueSpec(scheme="redis+pubsub", queue="churn", conn_id="r", options={"poll_interval": 1})
    assert pubsub.trigger_kwargs() == {"scheme": "redis+pubsub", "channels": ["churn"], "redis_conn_id": "r",
                                       "poll_interval": 1}  # fmt: skip
    sqs = MessageQueueSpec(scheme="sqs", queue="https://sqs.eu-west-1.amazonaws.com/1/q").trigger_kwargs()
    assert sqs["sqs_queue"].startswith("https://") and sqs["aws_conn_id"] == "aws_default"


def test_on_message_errors_name_the_field():
    raw = _raw()
    raw["schedule"]["on_message"] = {"scheme": "rabbit", "queue": "q"}
    with pytest.raises(SpecError, match=r"schedule\.on_message\.scheme: .*unknown queue scheme 'rabbit'"):
        _spec(raw)
    raw["schedule"]["on_message"] = {"scheme": "redis+list", "queue": "q", "topic": "x"}
    with pytest.raises(SpecError, match=r"schedule\.on_message\.topic: unknown field"):
        _spec(raw)
    raw["schedule"]["on_message"] = {"scheme": "redis+list", "queue": "q", "options": {"key": "other"}}
    with pytest.raises(SpecError, match=r"options \['key'\] are set by queue/conn_id"):
        _spec(raw)
    raw["schedule"]["on_message"] = {"scheme": "redis+list", "queue": ""}
    with pytest.raises(SpecError, match=r"schedule\.on_message\.queue"):
        _spec(raw)


def test_code_change_is_on_by_default_and_its_poll_is_bounded():
    raw = _raw()
    assert _spec(raw).schedule.on_code_change is True and _spec(raw).schedule.on_message is None
    raw["schedule"]["code_change_poll_seconds"] = 1
    with pytest.raises(SpecError, match=r"schedule\.code_change_poll_seconds"):
        _spec(raw)


def test_every_scheme_row_names_its_arguments():
    for name, row in QUEUE_SCHEMES.items():
        assert row.queue_argument and row.conn_argument and row.default_conn_id and row.delivery, name


@pytest.mark.parametrize(
    "edit",
    [
        lambda r: r.update(description="another description", owner="someone", tags=["x"]),
        lambda r: r["schedule"].update(cron="0 4 * * *", on_drift=False),
        lambda r: r.update(retries={"count": 3}),
        lambda r: r.update(monitoring={"psi_threshold": 0.3}),
        lambda r: r.update(promotion={**r.get("promotion", {}), "min_improvement": 0.05}),
        lambda r: r["data"].update(landing={"settle_seconds": 30}),
        lambda r: r["model"].update(cache=False, max_trials=7),
        lambda r: r.update(evaluation={"plots": False}),
    ],
    ids=["about", "schedule", "retries", "monitoring", "promotion", "landing", "model-guards", "evaluation"],
)
def test_a_trivial_edit_keeps_the_training_fingerprint(edit):
    raw = _raw()
    before = _spec(raw)
    edit(raw)
    after = _spec(raw)
    assert after.training_fingerprint() == before.training_fingerprint()


@pytest.mark.parametrize(
    "edit",
    [
        lambda r: r["model"].update(seed=7),
        lambda r: r["model"].update(code_version="labeling-v2"),
        lambda r: r["split"].update(seed=99),
        lambda r: r["data"]["features"]["numeric"].pop(),
        lambda r: r.update(cleaning={"impute": {"usage_gb": {"strategy": "median"}}}),
        lambda r: r.update(packaging={"onnx": "off"}),
    ],
    ids=["seed", "code_version", "split", "features", "cleaning", "packaging"],
)
def test_a_change_of_what_is_trained_changes_the_training_fingerprint(edit):
    raw = _raw()
    before = _spec(raw)
    edit(raw)
    after = _spec(raw)
    assert after.training_fingerprint() != before.training_fingerprint()
    assert set(TRAINING_FIELDS) <= set(type(after).model_fields)
