"""What a task tells the person reading its log and the run's note: skips, failures, run options."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import Asset
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_mlops.core.errors import NothingToProcessError
from airflow_mlops.core.model.outcome import OUTCOME_KEY
from airflow_mlops.operators.base import (
    MlopsBaseOperator,
    fail_without_retry_on_bad_input,
    requested_by,
    run_option,
    skip_when_nothing_to_process,
)
from airflow_mlops.operators.model import force_retrain, training_run_name

pytestmark = pytest.mark.unit


class _TaskInstance:
    def __init__(self, try_number: int = 1, max_tries: int = 0) -> None:
        self.try_number, self.max_tries = try_number, max_tries
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


class _Raises(MlopsBaseOperator):
    def __init__(self, *, error: BaseException, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error

    def execute(self, context: Any) -> Any:
        with fail_without_retry_on_bad_input(), skip_when_nothing_to_process():
            raise self.error


def _run(error: BaseException, ti: _TaskInstance) -> list[dict[str, Any]]:
    """The log lines of the task (structlog's events) after it raised."""
    import structlog

    with structlog.testing.capture_logs() as logs, pytest.raises(Exception):  # noqa: B017  # the raise is the case
        _Raises(task_id="data.validate", spec_path="/unused.yaml", error=error).execute({"ti": ti})
    return [e for e in logs if "outside of the Task Runner" not in e["event"]]  # Airflow's, in a test


def test_a_skip_logs_its_reason_and_records_the_short_form_for_the_note():
    ti = _TaskInstance()
    message = "churn_classifier v1 was already trained on this data (fingerprint ab12) with this spec; ..."
    logs = _run(NothingToProcessError(message, note="already trained on this data (churn_classifier v1)"), ti)
    assert [e["event"] for e in logs] == [f"SKIPPED: {message}"]
    assert ti.pushed[OUTCOME_KEY] == {"kind": "skipped", "task": "data.validate",
                                     "note": "SKIPPED: already trained on this data (churn_classifier v1)"}  # fmt: skip


def test_a_plain_skip_is_logged_and_recorded_with_its_message():
    ti = _TaskInstance()
    logs = _run(AirflowSkipException("no batches to score"), ti)
    assert [e["event"] for e in logs] == ["SKIPPED: no batches to score"]
    assert ti.pushed[OUTCOME_KEY]["note"] == "SKIPPED: no batches to score"


def test_bad_input_fails_with_a_readable_summary_above_the_traceback():
    ti = _TaskInstance(try_number=1, max_tries=2)  # retries left, but bad data fails at once
    message = (
        "data validation failed for pipeline 'churn' (2 of 18 expectations):\n"
        "  - expect_column_values_to_be_between on column 'tenure_months': expected 0..120, observed 130\n"
        "  - expect_column_values_to_be_in_set on column 'plan': expected basic, standard, observed gold\n"
        "full report: /r/validate/report.json"
    )
    logs = _run(ValueError(message), ti)
    assert [(e["log_level"], e["event"]) for e in logs] == [(
        "error",
        "FAILED at data.validate: data validation failed for pipeline 'churn' (2 of 18 expectations):\n"
        "  - expect_column_values_to_be_between on column 'tenure_months': expected 0..120, observed 130\n"
        "  - expect_column_values_to_be_in_set on column 'plan': expected basic, standard, observed gold\n"
        "  full report: /r/validate/report.json",
    )]  # fmt: skip
    assert ti.pushed[OUTCOME_KEY]["note"].startswith(
        "FAILED at data.validate: data validation failed for pipeline 'churn' (2 of 18 expectations): "
        "expect_column_values_to_be_between on column 'tenure_months'"
    )


def test_an_infrastructure_fault_with_retries_left_says_it_will_retry():
    ti = _TaskInstance(try_number=1, max_tries=1)
    logs = _run(ConnectionError("MLflow at http://mlflow:5000 refused the connection"), ti)
    assert [e["event"] for e in logs] == [
        "attempt 1 failed at data.validate (will retry): ConnectionError: MLflow at http://mlflow:5000 refused the "
        "connection"
    ]
    last = _TaskInstance(try_number=2, max_tries=1)
    assert _run(ConnectionError("refused"), last)[0]["event"] == "FAILED at data.validate: ConnectionError: refused"
    assert _run(AirflowFailException("rollback refused: v3 failed its gate"), _TaskInstance(1, 3))[0]["event"] == (
        "FAILED at data.validate: rollback refused: v3 failed its gate"
    )


def _context(run_type: str = "manual", user: str | None = "alice", conf: dict | None = None,
             params: dict | None = None, assets: list[str] = ()) -> dict[str, Any]:  # fmt: skip
    dag_run = SimpleNamespace(run_type=run_type, triggering_user_name=user, conf=conf or {},
                              run_after=dt.datetime(2026, 12, 1, 21, 40, 12, tzinfo=dt.UTC))  # fmt: skip
    events = {Asset(name=name, uri=f"file:///{name}"): [] for name in assets}
    return {"dag_run": dag_run, "params": params or {}, "triggering_asset_events": events,
            "dag": SimpleNamespace(dag_id="churn_training"), "run_id": "manual__2026-12-01T21:40:12"}  # fmt: skip


def test_run_options_come_from_the_conf_else_from_the_dags_params():
    assert run_option(_context(conf={"force_retrain": True}, params={"force_retrain": False}), "force_retrain")
    assert run_option(_context(params={"reason": "new labels"}), "reason") == "new labels"
    assert run_option(_context(), "reason", "none given") == "none given"
    assert force_retrain(_context(params={"force_retrain": True})) is True
    assert force_retrain(_context(conf={"force_retrain": "true"})) is True
    assert force_retrain(_context(conf={"force_retrain": "no"})) is False


def test_the_registry_move_names_the_run_and_who_triggered_it():
    assert requested_by(_context()) == "alice via churn_training/manual__2026-12-01T21:40:12"
    assert requested_by(_context(run_type="scheduled", user=None)) == "churn_training/manual__2026-12-01T21:40:12"


def test_the_lineage_carries_the_triggering_user_and_reason_when_there_are_some():
    context = {**_context(params={"reason": "labels fixed"}), "task": SimpleNamespace(task_id="model.plan")}
    lineage = MlopsBaseOperator.lineage(context)  # type: ignore[arg-type]
    assert lineage["triggered_by"] == "alice" and lineage["reason"] == "labels fixed"
    quiet = {**_context(run_type="scheduled", user=None), "task": SimpleNamespace(task_id="model.plan")}
    assert "triggered_by" not in MlopsBaseOperator.lineage(quiet) and "reason" not in MlopsBaseOperator.lineage(quiet)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("context", "name"),
    [
        (_context(run_type="asset_triggered", user=None, assets=["mlops.churn.landing.training"]),
         "churn training 2026-12-01 21:40 (asset: data arrival)"),
        (_context(run_type="asset_triggered", user=None, assets=["mlops.churn.drift", "mlops.churn.landing.training"]),
         "churn training 2026-12-01 21:40 (asset: drift, data arrival)"),
        (_context(run_type="scheduled", user=None), "churn training 2026-12-01 21:40 (schedule)"),
        (_context(params={"force_retrain": True}), "churn training 2026-12-01 21:40 (manual by alice, force_retrain)"),
        (_context(run_type="backfill", user=None), "churn training 2026-12-01 21:40 (backfill)"),
    ],
)  # fmt: skip
def test_the_training_run_is_named_for_people(context, name):
    assert training_run_name(context, "churn") == name  # type: ignore[arg-type]
