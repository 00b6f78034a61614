"""Broken and hostile files landed in the training inbox of a real stack, as a producer would.

The embedded stack (``airflow standalone`` + MLflow) runs the churn pipeline alone. A good
batch trains the first champion; then, landed together, files that cannot be read (a corrupt
``.csv.gz``, text named ``.csv.gz``, duplicate column names, a JSON array), beside a symlink to
/etc/passwd and a file still being written (``.part``); then, together, batches that read but
are bad on their own (one row, one class); then a good batch. Checked: each bad file is
quarantined under its run with a reason, the failed runs register nothing and leave the
champion where it was, the symlink and the partial file are never claimed, the passwd line
never reaches a log, and the good batch trains afterwards (no poisoned window).
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops import layout
from airflow_mlops.core.data import synthetic
from airflow_mlops.core.io import storage
from airflow_mlops.core.registry.client import Registry
from airflow_mlops.devstack.demo import DemoLoop
from airflow_mlops.devstack.processes import free_port
from airflow_mlops.devstack.stack import Stack, StackConfig, single_pipeline_project

pytestmark = pytest.mark.integration

ROWS = 1500


def _unreadable(inbox: Path, scratch: Path) -> list[str]:
    good = synthetic.churn_batch(200, seed=5)
    (inbox / "corrupt.csv.gz").write_bytes(gzip.compress(good.to_csv(index=False).encode())[:300] + os.urandom(64))
    (inbox / "text.csv.gz").write_text(good.to_csv(index=False))
    header = ",".join([*good.columns, "plan"])  # a column name twice
    (inbox / "dupcols.csv").write_text(header + "\n" + "\n".join(",".join(map(str, r)) + ",basic" for r in good.values))
    (inbox / "array.json").write_text(good.head(50).to_json(orient="records"))
    # Never to be claimed: a link out of the inbox, and a file its producer is still writing.
    (inbox / "passwd.csv").symlink_to("/etc/passwd")
    (scratch / "upload.part").write_text("customer_id,tenure_months\n1,2\n")
    shutil.move(str(scratch / "upload.part"), inbox / "upload.csv.part")
    return ["corrupt.csv.gz", "text.csv.gz", "dupcols.csv", "array.json"]


def _bad_batches(inbox: Path) -> list[str]:
    one_row = synthetic.churn_batch(50, seed=6).dropna().head(1)  # a complete row: readable, just too few
    one_class = synthetic.churn_batch(400, seed=7).assign(churned=0)
    one_row.to_parquet(inbox / "one-row.parquet")
    one_class.to_parquet(inbox / "one-class.parquet")
    return ["one-row.parquet", "one-class.parquet"]


def _quarantined(pipeline: str, run_id: str) -> dict[str, dict[str, Any]]:
    """Files the run set aside (lake names keep the original name at their end) -> their reports."""
    folder = Path(layout.join(layout.artifact_root(), pipeline, "quarantine", layout.safe_segment(run_id)))
    if not folder.is_dir():
        return {}
    return {
        p.name: storage.read_json(f"{p}.report.json") for p in folder.iterdir() if not p.name.endswith(".report.json")
    }


@pytest.fixture(scope="module")
def door(tmp_path_factory):
    base = tmp_path_factory.mktemp("door")
    dags, pipelines = single_pipeline_project(base / "project")
    environment = dict(os.environ)
    cfg = StackConfig(root=base / "stack", dags_folder=dags, pipelines_folder=pipelines,
                      airflow_port=free_port(), mlflow_port=free_port())  # fmt: skip
    stack = Stack(cfg).start()
    facts: dict[str, Any] = {"stack": stack}
    try:
        demo = DemoLoop(stack, rows=ROWS, say=print)
        demo._prepare()
        inbox = Path(layout.landing_dir("churn", "training"))
        name = demo.spec.registered_model_name

        def state() -> tuple[int, str | None]:
            registry = Registry(cfg.mlflow_url)
            versions = registry.client.search_model_versions(f"name='{name}'")
            current = registry.champion(name)
            return len(versions), str(current.version) if current else None

        demo._land("training", dt.date(2026, 11, 2), seed=1, drift=0.0)
        demo._await_run("training", "asset_triggered")
        facts["first"] = demo.result.runs[-1]  # with its task states
        facts["after_first"] = state()
        facts["unreadable"] = _unreadable(inbox, base)
        demo._await_run("training", "asset_triggered")
        facts["unreadable_run"] = demo.result.runs[-1]  # with its task states
        facts["after_unreadable"] = state()
        facts["bad_batches"] = _bad_batches(inbox)
        demo._await_run("training", "asset_triggered")
        facts["bad_batches_run"] = demo.result.runs[-1]  # with its task states
        facts["after_bad_batches"] = state()
        demo._land("training", dt.date(2026, 11, 9), seed=2, drift=0.0)
        demo._await_run("training", "asset_triggered")
        facts["last"] = demo.result.runs[-1]  # with its task states
        facts["after_last"] = state()
        facts["inbox"] = sorted(p.name for p in inbox.iterdir())
        facts["logs"] = b"".join(p.read_bytes() for p in cfg.root.rglob("*.log") if p.is_file())
        yield facts
    finally:
        stack.stop()
        os.environ.clear()
        os.environ.update(environment)


def test_the_first_good_batch_trains_the_champion(door):
    assert door["first"]["state"] == "success" and door["after_first"] == (1, "1")


def test_unreadable_files_are_each_quarantined_with_a_reason_and_change_nothing(door):
    run = door["unreadable_run"]
    assert run["state"] == "failed" and run["tasks"]["data.ingest"] == "failed"
    assert run["tasks"]["model.register"] == "upstream_failed" and run["tasks"]["model.promote"] == "upstream_failed"
    quarantined = _quarantined("churn", run["run_id"])
    for name in door["unreadable"]:
        matches = [report for stored, report in quarantined.items() if stored.endswith(name)]
        assert len(matches) == 1, (name, sorted(quarantined))
        assert matches[0]["stage"] == "ingest" and matches[0]["error"], matches[0]
    assert door["after_unreadable"] == door["after_first"]  # no version registered, the champion stays


def test_batches_bad_on_their_own_are_quarantined_and_change_nothing(door):
    run = door["bad_batches_run"]
    assert run["state"] == "failed" and run["tasks"]["data.validate"] == "failed"
    quarantined = _quarantined("churn", run["run_id"])
    for name in door["bad_batches"]:
        matches = [report for stored, report in quarantined.items() if stored.endswith(name)]
        assert len(matches) == 1 and matches[0]["stage"] == "validate", (name, sorted(quarantined))
    assert door["after_bad_batches"] == door["after_first"]


def test_the_next_good_batch_trains_again_no_window_is_poisoned(door):
    assert door["last"]["state"] == "success"
    versions, _ = door["after_last"]
    assert versions == 2


def test_a_symlink_and_a_partial_upload_are_never_claimed_and_passwd_never_reaches_a_log(door):
    assert {"passwd.csv", "upload.csv.part"} <= set(door["inbox"])
    passwd_line = Path("/etc/passwd").read_text().splitlines()[0].encode()
    assert passwd_line not in door["logs"]
