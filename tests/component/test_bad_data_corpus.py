"""Bad data at the door, past the single-file corpus of ``test_bad_inputs.py``: several bad files
landing together, batches judged on their own (rows, classes), where a rejected file went, what
an error may echo of a file, and files the inbox ignores."""

from __future__ import annotations

import gzip
import io
import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from airflow_mlops import layout
from airflow_mlops.core.data import stages as data_stages
from airflow_mlops.core.data import synthetic
from airflow_mlops.core.data.sources import IngestError
from airflow_mlops.core.data.validation.suite import DataValidationError
from airflow_mlops.core.io import storage
from airflow_mlops.spec import PipelineSpec, load_spec

pytestmark = pytest.mark.component

RUN = "door-run"
TICKETS = Path(__file__).resolve().parents[2] / "include" / "pipelines" / "tickets.yaml"


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _batch(seed: int, rows: int = 300) -> pd.DataFrame:
    frame = synthetic.churn_batch(rows, seed=seed)
    frame["customer_id"] = [f"s{seed}-{i}" for i in range(len(frame))]  # unique across batches
    return frame


def _lake(spec: PipelineSpec) -> Path:
    lake = Path(layout.lake_dir(spec.name, "labeled"))
    lake.mkdir(parents=True, exist_ok=True)
    return lake


def _quarantined(spec: PipelineSpec) -> list[str]:
    folder = Path(layout.artifact_root()) / spec.name / "quarantine" / RUN
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".report.json")) if folder.exists() else []


def _report(spec: PipelineSpec, name: str) -> dict:
    folder = Path(layout.artifact_root()) / spec.name / "quarantine" / RUN
    return json.loads((folder / f"{name}.report.json").read_text())


# -- several bad files of one window ---------------------------------------------------------------


def test_every_bad_file_of_the_window_is_quarantined_not_only_the_first(spec, mlops_home):
    lake = _lake(spec)
    (lake / "1-good.parquet").write_bytes(_parquet(_batch(1)))
    (lake / "2-text.csv").write_bytes(_batch(2).assign(tenure_months="abc").to_csv(index=False).encode())
    (lake / "3-corrupt.csv.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"not really gzip" * 50)
    (lake / "4-good.parquet").write_bytes(_parquet(_batch(4)))
    (lake / "5-dupes.csv").write_bytes(b"customer_id,plan,plan\nc1,basic,basic\n")

    with pytest.raises(IngestError) as err:
        data_stages.ingest_labeled(spec, RUN)

    message = str(err.value)
    for name in ("2-text.csv", "3-corrupt.csv.gz", "5-dupes.csv"):
        assert name in message
    assert _quarantined(spec) == ["2-text.csv", "3-corrupt.csv.gz", "5-dupes.csv"]
    assert sorted(p.name for p in lake.iterdir()) == ["1-good.parquet", "4-good.parquet"]  # the good stay
    assert not Path(layout.run_dir(spec.name, RUN, "ingest"), "dataset.parquet").exists()
    # The next run is not poisoned: it trains on what is left.
    assert data_stages.ingest_labeled(spec, "next-run")["rows"] == 600


def test_a_good_file_after_a_bad_first_file_is_not_rejected_for_the_bad_ones_columns(spec, mlops_home):
    lake = _lake(spec)
    # The bad file has an extra declared column, so its columns differ from the good files'.
    declared = spec.model_copy(update={"data": spec.data.model_copy(update={"dtypes": {"note": "string"}})})
    (lake / "1-bad.parquet").write_bytes(_parquet(_batch(1).assign(note="x", tenure_months=float("inf"))))
    (lake / "2-good.parquet").write_bytes(_parquet(_batch(2)))
    (lake / "3-good.parquet").write_bytes(_parquet(_batch(3)))
    with pytest.raises(IngestError, match="infinite"):
        data_stages.ingest_labeled(declared, RUN)
    assert _quarantined(declared) == ["1-bad.parquet"]


def test_the_error_and_the_log_say_where_the_file_was_quarantined(spec, mlops_home, caplog):
    lake = _lake(spec)
    (lake / "bad.csv").write_bytes(_batch(1).assign(tenure_months="abc").to_csv(index=False).encode())
    with caplog.at_level(logging.WARNING), pytest.raises(IngestError) as err:
        data_stages.ingest_labeled(spec, RUN)
    where = str(Path(layout.artifact_root()) / spec.name / "quarantine" / RUN / "bad.csv")
    assert f"quarantined at {where}" in str(err.value)
    assert any(where in record.getMessage() for record in caplog.records)


def test_a_storage_failure_is_not_blamed_on_the_file(spec, mlops_home, monkeypatch):
    lake = _lake(spec)
    (lake / "1.parquet").write_bytes(_parquet(_batch(1)))

    def unreachable(uri):
        raise ConnectionError("store unreachable")

    monkeypatch.setattr(storage, "local_copy", unreachable)
    with pytest.raises(ConnectionError):  # not an IngestError: the task keeps its retries
        data_stages.ingest_labeled(spec, RUN)
    assert (lake / "1.parquet").exists() and _quarantined(spec) == []


# -- what an error may echo of a file ---------------------------------------------------------------


def test_errors_and_reports_hold_only_a_short_escaped_excerpt_of_the_content(spec, mlops_home):
    lake = _lake(spec)
    lines = _batch(1).to_csv(index=False).splitlines()
    secret = "TOKEN" + "Z" * 400 + "\x1b[31m"
    (lake / "ragged.csv").write_text("\n".join([lines[0], lines[1] + "," + secret, *lines[2:]]))
    cast = _batch(2).astype({"tenure_months": "object"})
    cast.loc[:3, "tenure_months"] = secret
    (lake / "cast.csv").write_bytes(cast.to_csv(index=False).encode())
    with pytest.raises(IngestError) as err:
        data_stages.ingest_labeled(spec, RUN)
    assert "Z" * 81 not in str(err.value) and "\x1b" not in str(err.value)
    assert _quarantined(spec) == ["cast.csv", "ragged.csv"]
    for name in _quarantined(spec):
        report = json.dumps(_report(spec, name))
        assert "Z" * 81 not in report and "\\u001b[31m" not in report


# -- each newly landed batch judged on its own --------------------------------------------------------


def _claimed_run(spec: PipelineSpec, new: pd.DataFrame, name: str = "9-new.parquet") -> dict:
    lake = _lake(spec)
    (lake / "1-old.parquet").write_bytes(_parquet(_batch(1)))
    (lake / "2-old.parquet").write_bytes(_parquet(_batch(2)))
    (lake / name).write_bytes(_parquet(new))
    dataset = data_stages.ingest_labeled(spec, RUN, claimed=[str(lake / name)])
    return dataset


def test_a_one_row_landed_batch_is_quarantined_though_the_window_has_enough_rows(spec, mlops_home):
    dataset = _claimed_run(spec, _batch(9, rows=50).dropna().head(1))
    with pytest.raises(DataValidationError) as err:
        data_stages.validate_dataset(spec, dataset, RUN)
    assert "9-new.parquet" in str(err.value) and "1 labeled row" in str(err.value)
    assert _quarantined(spec) == ["9-new.parquet"]
    assert sorted(p.name for p in _lake(spec).iterdir()) == ["1-old.parquet", "2-old.parquet"]


def test_a_single_class_landed_batch_is_quarantined(spec, mlops_home):
    dataset = _claimed_run(spec, _batch(9).assign(churned=0))
    with pytest.raises(DataValidationError) as err:
        data_stages.validate_dataset(spec, dataset, RUN)
    assert "only one class" in str(err.value) and "9-new.parquet" in str(err.value)
    assert _quarantined(spec) == ["9-new.parquet"]
    assert _report(spec, "9-new.parquet")["stage"] == "validate"


def test_a_landed_batch_failing_an_aggregate_expectation_alone_is_quarantined(spec, mlops_home):
    strict = spec.model_copy(
        update={
            "validation": spec.validation.model_copy(
                update={
                    "expectations": [
                        *spec.validation.expectations,
                        type(spec.validation.expectations[0])(
                            type="expect_column_mean_to_be_between",
                            kwargs={"column": "tenure_months", "min_value": 10, "max_value": 60},
                        ),
                    ]
                }
            )
        }
    )
    # The window's mean stays in range; the new batch's alone does not.
    new = _batch(9, rows=150).assign(tenure_months=100.0)
    dataset = _claimed_run(strict, new)
    with pytest.raises(DataValidationError, match="expect_column_mean_to_be_between"):
        data_stages.validate_dataset(strict, dataset, RUN)
    assert _quarantined(strict) == ["9-new.parquet"]


def test_a_landed_batch_lacking_some_classes_is_a_warning_not_a_rejection(mlops_home):
    tickets = load_spec(TICKETS)
    lake = _lake(tickets)
    for seed in (1, 2):
        (lake / f"{seed}-old.parquet").write_bytes(_parquet(synthetic.tickets_batch(400, seed=seed)))
    new = synthetic.tickets_batch(400, seed=3)
    new = new[new["team"] != "sales"]
    (lake / "9-new.parquet").write_bytes(_parquet(new))
    dataset = data_stages.ingest_labeled(tickets, RUN, claimed=[str(lake / "9-new.parquet")])
    result = data_stages.validate_dataset(tickets, dataset, RUN)
    assert result["batch_warnings"] == {str(lake / "9-new.parquet"): ["lacks label class(es) ['sales']"]}
    assert result["warnings"] >= 1 and _quarantined(tickets) == []


def test_history_batches_are_not_judged_again_alone(spec, mlops_home):
    lake = _lake(spec)
    (lake / "1-old.parquet").write_bytes(_parquet(_batch(1, rows=5)))  # small, but landed before this run
    (lake / "9-new.parquet").write_bytes(_parquet(_batch(9)))
    dataset = data_stages.ingest_labeled(spec, RUN, claimed=[str(lake / "9-new.parquet")])
    data_stages.validate_dataset(spec, dataset, RUN)
    assert _quarantined(spec) == []


def test_landed_batch_checks_follow_the_spec(spec, mlops_home):
    relaxed = spec.model_copy(
        update={
            "validation": spec.validation.model_copy(
                update={"batch": spec.validation.batch.model_copy(update={"min_rows": 1, "classes": "warning"})}
            )
        }
    )
    dataset = _claimed_run(relaxed, _batch(9, rows=50).dropna().head(1))
    result = data_stages.validate_dataset(relaxed, dataset, RUN)
    assert _quarantined(relaxed) == []
    ((warning,),) = result["batch_warnings"].values()
    assert warning.startswith("only one class of the label 'churned'")


# -- the inbox names what it ignores ------------------------------------------------------------------


def test_inbox_files_that_are_never_claimed_are_logged_once_each(mlops_home, caplog):
    from airflow_mlops.core.data.sources import SUFFIXES
    from airflow_mlops.core.landing import inbox as landing

    inbox = Path(layout.landing_dir("churn", "training"))
    (inbox / "2026-12").mkdir(parents=True)
    (inbox / "2026-12" / "nested.csv").write_text("a\n1\n")
    (inbox / "book.xlsx").write_bytes(b"PK")
    (inbox / ".hidden.csv").write_text("a\n1\n")  # a write in progress: never data, never logged
    (inbox / "ok.csv").write_text("a\n1\n")
    with caplog.at_level(logging.WARNING, logger="airflow_mlops"):
        for _ in range(3):  # every poll lists the inbox again
            assert landing.settled_files(str(inbox), tuple(SUFFIXES)) == [str(inbox / "ok.csv")]
    lines = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert len(lines) == 2, lines
    assert any("book.xlsx" in line and "suffix" in line for line in lines)
    assert any("2026-12" in line and "folder" in line for line in lines)


def test_a_gzip_of_text_is_read_whole(spec, mlops_home):
    lake = _lake(spec)
    (lake / "1.csv.gz").write_bytes(gzip.compress(_batch(1).to_csv(index=False).encode()))
    assert data_stages.ingest_labeled(spec, RUN)["rows"] == 300


def test_s3_inbox_entries_that_are_never_claimed_are_logged_once_each(caplog):
    from airflow_mlops.core.landing import notes as inbox_notes

    page = {
        "Contents": [{"Key": "in/a.csv"}, {"Key": "in/B.CSV"}, {"Key": "in/_tmp.xlsx"}],
        "CommonPrefixes": [{"Prefix": "in/sub/"}],
    }
    with caplog.at_level(logging.WARNING, logger="airflow_mlops"):
        for _ in range(2):
            inbox_notes.note_ignored_s3("s3://door-bucket/in/", page, "in/", (".csv",))
    lines = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert len(lines) == 2 and "s3://door-bucket/in/B.CSV" in lines[0] and "s3://door-bucket/in/sub/" in lines[1]


def test_validation_messages_quote_unexpected_values_only_as_short_excerpts(spec):
    from airflow_mlops.core.data.validation.suite import validate_batch

    frame = _batch(1).astype({"plan": "object"})
    frame.loc[:2, "plan"] = "P" * 500 + "\x1b[2J"
    with pytest.raises(DataValidationError) as err:
        validate_batch(frame, spec)
    assert "P" * 81 not in str(err.value) and "\x1b" not in str(err.value)
    assert "P" * 81 not in json.dumps(err.value.report)


def test_a_failed_ingest_or_validation_stops_the_training_dag_before_register_and_promote():
    from airflow_mlops.factories.training import build_training_dag
    from tests.conftest import EXAMPLE_SPEC

    dag = build_training_dag(EXAMPLE_SPEC)
    for task_id in ("model.register", "model.gate", "model.promote", "model.deploy"):
        task = dag.get_task(task_id)
        ancestors = {t.task_id: t for t in task.get_flat_relatives(upstream=True)}
        assert {"data.ingest", "data.validate"} <= set(ancestors), task_id
        downstream_of_validate = {t.task_id for t in dag.get_task("data.validate").get_flat_relatives(upstream=False)}
        on_the_path = [t for tid, t in ancestors.items() if tid in downstream_of_validate] + [task]
        # all_success everywhere between validate and the task: a failed (or upstream-failed) task stops it.
        assert all(t.trigger_rule == "all_success" for t in on_the_path), task_id
