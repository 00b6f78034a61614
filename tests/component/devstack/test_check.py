"""``airflow-mlops check``: a good pipeline passes; a bad spec, a heavy DAG file or a training that breaks fails.

The parse check runs a real fresh interpreter (Airflow's DagBag and the factories); the dry
training runs the real stages against a throw-away SQLite MLflow store, on a small sample.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from tests.conftest import EXAMPLE_SPEC, REPO

from airflow_mlops.cli import main

pytestmark = pytest.mark.component


def _spec_file(tmp_path: Path, change=None) -> Path:
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    if change is not None:
        change(data)
    path = tmp_path / "include" / "pipelines" / "churn.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def _lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line[:4] in ("OK  ", "FAIL", "SKIP")]


def test_a_good_pipeline_passes_and_never_touches_the_real_registry(tmp_path, capsys, monkeypatch):
    real = tmp_path / "real-mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{real}")
    monkeypatch.setenv("AIRFLOW_MLOPS_ARTIFACT_ROOT", str(tmp_path / "real-artifacts"))
    dag_file = REPO / "dags" / "churn_training.py"

    status = main(["check", str(EXAMPLE_SPEC), "--dags", str(dag_file), "--sample-rows", "600"])

    out = capsys.readouterr().out
    assert status == 0, out
    spec_line, parse_spec_line, parse_dag_line, train_line = _lines(out)
    assert spec_line.startswith(f"OK   spec  {EXAMPLE_SPEC}: pipeline 'churn'")
    assert parse_spec_line.startswith(f"OK   dags  {EXAMPLE_SPEC}: churn_training, churn_scoring, churn_monitoring")
    assert parse_dag_line.startswith(f"OK   dags  {dag_file}: churn_training") and parse_dag_line.endswith("light")
    assert train_line.startswith(f"OK   train {EXAMPLE_SPEC}: 600 rows, hist_gradient_boosting: ingest")
    assert "package" in train_line and "gate would" in train_line
    assert out.rstrip().endswith("check passed: 4 OK, 0 FAIL, 0 SKIP")
    # The throw-away store was used and removed; the real one was never created; the environment is back.
    assert not real.exists() and not (tmp_path / "real-artifacts").exists()
    assert os.environ["MLFLOW_TRACKING_URI"] == f"sqlite:///{real}"


def test_a_spec_with_an_error_fails_naming_the_field(tmp_path, capsys):
    path = _spec_file(tmp_path, lambda d: d["promotion"].update(requirements={"max_p99_latency_ms": -1}))

    status = main(["check", str(path), "--no-train"])

    out = capsys.readouterr().out
    assert status == 1
    assert _lines(out) == [
        f"FAIL spec  {path}: - promotion.requirements.max_p99_latency_ms: Input should be greater than 0",
        f"SKIP train {path}: the spec does not load",
    ]
    assert f"--- spec {path}\ninvalid pipeline spec {path}:" in out


def test_a_dag_file_whose_parse_imports_something_heavy_fails(tmp_path, capsys):
    spec = _spec_file(tmp_path)
    dag = tmp_path / "dags" / "churn_training.py"
    dag.parent.mkdir()
    dag.write_text(
        "from pathlib import Path\n\nimport pandas  # noqa: F401  (the mistake: a heavy import at parse time)\n\n"
        "from airflow_mlops.factories import build_training_dag\n\n"
        "dag = build_training_dag(Path(__file__).parents[1] / 'include' / 'pipelines' / 'churn.yaml')\n"
    )

    status = main(["check", str(spec), "--dags", str(dag.parent), "--no-train"])

    out = capsys.readouterr().out
    assert status == 1, out
    lines = _lines(out)
    assert lines[1].startswith(f"OK   dags  {spec}: churn_training")  # the factories alone stay light
    assert lines[2].startswith(f"FAIL dags  {dag.parent}: parsing imports heavy modules [")
    assert "'pandas'" in lines[2] and "import them inside execute()" in lines[2]


def test_a_dag_file_that_does_not_import_fails_with_the_error(tmp_path, capsys):
    spec = _spec_file(tmp_path)
    dag = tmp_path / "broken_dag.py"
    dag.write_text("from airflow_mlops.factories import build_trainng_dag\n")

    status = main(["check", str(spec), "--dags", str(dag), "--no-train"])

    out = capsys.readouterr().out
    assert status == 1
    assert _lines(out)[2].startswith(f"FAIL dags  {dag}: ")
    assert "cannot import name 'build_trainng_dag'" in out


def test_a_training_that_breaks_fails_with_the_reason(tmp_path, capsys):
    from airflow_mlops.core.data import synthetic
    from airflow_mlops.core.io import tables

    sample = tmp_path / "export.parquet"
    tables.write_parquet(synthetic.churn_batch(400, seed=2).drop(columns=["churned"]), str(sample))

    status = main(["check", str(EXAMPLE_SPEC), "--data", str(sample), "--sample-rows", "400"])

    out = capsys.readouterr().out
    assert status == 1, out
    train_line = _lines(out)[-1]
    assert train_line.startswith(f"FAIL train {EXAMPLE_SPEC}: ingest failed: ")
    assert "churned" in train_line  # the missing label column is named
    assert f"--- train {EXAMPLE_SPEC}\nTraceback" in out


def test_a_spec_reading_its_inbox_without_a_sample_is_skipped_not_failed(tmp_path):
    from airflow_mlops.devstack.dry_run import dry_train
    from airflow_mlops.spec import load_spec

    path = _spec_file(tmp_path, lambda d: d["data"].pop("generator"))
    state, summary, _ = dry_train(load_spec(path), 100, None)
    assert (state, summary) == ("SKIP", "the spec reads its landing inbox: give a labeled sample with --data FILE")


def test_the_json_report_has_one_entry_per_check(tmp_path, capsys):
    import json

    path = _spec_file(tmp_path, lambda d: d["model"].update(max_trials=0))
    assert main(["check", str(path), "--no-train", "--json"]) == 1
    outcomes = json.loads(capsys.readouterr().out)
    assert [(o["check"], o["status"]) for o in outcomes] == [("spec", "FAIL"), ("train", "SKIP")]
    assert "model.max_trials" in outcomes[0]["details"]
