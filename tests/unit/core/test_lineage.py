"""core.lineage: dataset names by the OpenLineage naming spec, and what each contract kind names."""

from __future__ import annotations

import os

import pytest

from airflow_mlops.core.lineage import KINDS, Facts, Ref, merged, task_datasets, uri_ref

pytestmark = pytest.mark.unit

TRACKING = "http://mlflow.internal:5000"
DATASET = {
    "uri": "s3://lake/churn/runs/r1/ingest/dataset.parquet",
    "rows": 1200,
    "fingerprint": "abcd1234abcd1234",
    "profile_uri": "s3://lake/churn/runs/r1/ingest/profile.json",
    "sources": ["s3://lake/churn/lake/labeled/a.parquet", "s3://lake/churn/lake/labeled/b.parquet"],
    "rows_by_source": {"s3://lake/churn/lake/labeled/a.parquet": 700, "s3://lake/churn/lake/labeled/b.parquet": 500},
}
SPLIT = {
    part: {"uri": f"/data/runs/r1/split/{part}.parquet", "rows": rows, "fingerprint": f"fp-{part}"}
    for part, rows in (("train", 780), ("validation", 120), ("test", 300))
}
TRAINING = {"run_id": "run123", "model_uri": "models:/m-1", "experiment_id": "7", "winner": {}, "trials": 1}


@pytest.mark.parametrize(
    ("uri", "namespace", "name"),
    [
        ("/data/a.parquet", "file", "/data/a.parquet"),
        ("file:///data/a.parquet", "file", "/data/a.parquet"),
        ("file://nas1/share/a.parquet", "file://nas1", "/share/a.parquet"),
        ("s3://bucket/key/a.parquet", "s3://bucket", "key/a.parquet"),
        ("s3://AKIAIOSFODNN7EXAMPLE:secret@bucket/a.parquet", "s3://bucket", "a.parquet"),
        ("gs://bucket/a", "gs://bucket", "a"),
        ("mlflow-artifacts:/1/abc/artifacts/onnx/model.onnx", "mlflow-artifacts", "/1/abc/artifacts/onnx/model.onnx"),
    ],
)
def test_uris_are_named_as_the_openlineage_naming_spec_says(uri, namespace, name):
    ref = uri_ref(uri)
    assert (ref.namespace, ref.name) == (namespace, name)


def test_a_relative_path_is_named_by_its_absolute_path():
    assert uri_ref("data/a.parquet").name == os.path.abspath("data/a.parquet")


def test_the_tracking_namespace_never_holds_credentials():
    facts = Facts(tracking_uri="https://alice:s3cret@mlflow.example.com/?token=abc")
    assert "alice" not in facts.tracking and "s3cret" not in facts.tracking and "abc" not in facts.tracking
    assert facts.tracking.startswith("https://mlflow.example.com/")


def test_ingest_reads_its_sources_with_their_rows_and_writes_the_dataset_with_rows_and_fingerprint():
    inputs, outputs = task_datasets({}, "dataset", DATASET, Facts(tracking_uri=TRACKING))
    assert [(r.namespace, r.name, r.rows) for r in inputs] == [
        ("s3://lake", "churn/lake/labeled/a.parquet", 700),
        ("s3://lake", "churn/lake/labeled/b.parquet", 500),
    ]
    assert outputs[0] == Ref("s3://lake", "churn/runs/r1/ingest/dataset.parquet", 1200, "abcd1234abcd1234")
    assert outputs[1].name.endswith("profile.json") and outputs[1].rows is None


def test_a_task_reading_the_split_reads_the_parts_its_declaration_names():
    facts = Facts(upstream={"split": SPLIT})
    test_only, _ = task_datasets({"split": "split.test"}, None, None, facts)
    training, _ = task_datasets({"split": "split.train"}, None, None, facts)
    assert [r.name for r in test_only] == ["/data/runs/r1/split/test.parquet"]
    assert [(r.name.rsplit("/", 1)[1], r.rows, r.fingerprint) for r in training] == [
        ("train.parquet", 780, "fp-train"),
        ("validation.parquet", 120, "fp-validation"),
    ]


def test_register_writes_the_model_version_named_by_the_tracking_uri_with_its_run_id():
    facts = Facts(tracking_uri=TRACKING, upstream={"training": TRAINING, "dataset": DATASET})
    inputs, outputs = task_datasets(
        {"training": "training", "dataset": "dataset"},
        "registered",
        {"name": "churn_classifier", "version": "4"},
        facts,
    )
    assert outputs == [
        Ref(
            TRACKING,
            "models/churn_classifier/4",
            model={"name": "churn_classifier", "version": "4", "run_id": "run123"},
        )
    ]
    assert [r.name for r in inputs] == ["runs/run123", "churn/runs/r1/ingest/dataset.parquet"]
    assert inputs[0].run == {"run_id": "run123", "experiment_id": "7", "model_uri": "models:/m-1"}


def test_promotion_moves_the_champion_alias_from_the_gated_version():
    gate = {"name": "churn_classifier", "version": "4", "promote": True}
    record = {"id": "x", "from_version": "3", "to_version": "4", "at": "", "by": "", "reason": ""}
    inputs, outputs = task_datasets(
        {"gate": "gate"}, "promotion", record, Facts(tracking_uri=TRACKING, upstream={"gate": gate})
    )
    assert [r.name for r in inputs] == ["models/churn_classifier/4"]
    assert [(r.name, dict(r.model or {})) for r in outputs] == [
        ("models/churn_classifier@champion", {"name": "churn_classifier", "alias": "champion", "version": "4"})
    ]


def test_a_rollback_names_the_model_from_the_spec():
    record = {"id": "x", "from_version": "4", "to_version": "3", "at": "", "by": "", "reason": ""}
    _, outputs = task_datasets(
        {}, "promotion", record, Facts(tracking_uri=TRACKING, model_name=lambda: "churn_classifier")
    )
    assert [r.name for r in outputs] == ["models/churn_classifier@champion"]


def test_monitoring_reads_the_champion_its_reference_and_the_logs_and_writes_its_reports():
    result = {"model_version": "4", "reference_uri": "/d/train.parquet", "current_uris": ["/logs/p1.parquet"],
              "current_rows": 300, "report_uri": "/r/drift_report.json", "html_report_uri": "/r/drift_report.html",
              "mlflow_run_id": "mon1"}  # fmt: skip
    inputs, outputs = task_datasets({}, "monitor", result, Facts(tracking_uri=TRACKING, model_name=lambda: "m"))
    assert [(r.name, r.rows) for r in inputs] == [("models/m/4", None), ("/d/train.parquet", None),
                                                  ("/logs/p1.parquet", 300)]  # fmt: skip
    assert [r.name for r in outputs] == ["/r/drift_report.json", "/r/drift_report.html", "runs/mon1"]


def test_a_dataset_named_twice_is_one_input_with_what_both_knew():
    assert merged([Ref("file", "/a"), Ref("file", "/a", rows=3, fingerprint="f"), Ref("file", "/b")]) == [
        Ref("file", "/a", 3, "f"),
        Ref("file", "/b"),
    ]


def test_what_a_task_writes_is_not_also_its_input():
    # validate names the dataset it read; a kind that wrote a dataset it read would list it once, as output
    facts = Facts(upstream={"dataset": DATASET})
    inputs, outputs = task_datasets({"dataset": "dataset"}, "dataset", DATASET, facts)
    assert not {r.key for r in inputs} & {r.key for r in outputs}


def test_without_a_result_only_the_declared_inputs_are_named():
    inputs, outputs = task_datasets({"dataset": "dataset"}, "split", None, Facts(upstream={"dataset": DATASET}))
    assert [r.name for r in inputs] == ["churn/runs/r1/ingest/dataset.parquet"] and outputs == []


def test_an_unresolved_or_empty_parameter_names_nothing():
    assert task_datasets({"dataset": "dataset", "trials": "trials"}, None, None,
                         Facts(upstream={"dataset": None, "trials": []})) == ([], [])  # fmt: skip


def test_every_kind_reads_and_writes_refs():
    for name, kind in KINDS.items():
        assert callable(kind.read) and callable(kind.wrote), name


def test_a_task_naming_only_files_never_asks_for_the_tracking_uri():
    def no_lookup() -> str:
        raise AssertionError("the MLflow connection was looked up")

    facts = Facts(tracking_uri=no_lookup, upstream={"dataset": DATASET})
    assert task_datasets({"dataset": "dataset"}, "split", {"train": DATASET, "test": DATASET}, facts)[1]
