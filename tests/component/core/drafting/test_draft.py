"""``airflow-mlops init``: drafting a spec from a file, its decisions, its refusals, and training the draft."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from airflow_mlops.cli import main
from airflow_mlops.core.drafting.draft import draft_from_file, draft_spec, pipeline_name, write_draft
from airflow_mlops.core.drafting.file_profile import DraftError, infer_kind, scan
from airflow_mlops.core.model import release
from airflow_mlops.spec import DataSpec, load_spec, parse_spec
from tests.component.core.io.test_s3 import bucket, s3_server  # noqa: F401  (moto S3 fixtures)

pytestmark = pytest.mark.component

ID_OPTIONAL = not DataSpec.model_fields["id_column"].is_required()


def _awkward(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    width = rng.normal(1.2, 0.4, rows).round(2)
    x_y = rng.normal(10, 3, rows)
    x_y[rng.random(rows) < 0.1] = np.nan
    species = np.where(width < 1.0, "setosa", np.where(width < 1.4, "versicolor", "virginica"))
    return pd.DataFrame(
        {
            "sample_id": [f"s{i:05d}" for i in range(rows)],
            "petal width (cm)": width,
            "a/b": rng.integers(0, 4, rows),
            "x.y": x_y,
            "café": rng.choice(["noir", "crème", "au lait"], rows),
            "1st": rng.choice(["yes", "no"], rows),
            "comment": [f"free text number {v}" for v in rng.integers(0, 10**9, rows)],
            "constant": 7,
            "signed up": (pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, rows), "D")).strftime(
                "%Y-%m-%d"
            ),
            "species": species,
        }
    )


def test_awkward_names_multiclass_string_label_id_missing_values_and_drops(tmp_path):
    path = tmp_path / "Iris Like.csv"
    _awkward().to_csv(path, index=False)
    draft = draft_from_file(str(path), "species")
    data = draft.spec["data"]
    assert draft.name == "iris_like" and draft.spec["model"]["registered_name"] == "iris_like_model"
    assert data["id_column"] == "sample_id" and data["label"] == "species"
    assert data["dtypes"] == {"species": "string"}
    assert data["features"] == {"numeric": ["petal width (cm)", "a/b", "x.y"], "categorical": ["café", "1st"]}
    assert set(draft.dropped) == {"comment", "constant", "signed up"}
    assert "free text" in draft.dropped["comment"] and "constant" in draft.dropped["constant"]
    assert "date" in draft.dropped["signed up"] and any("split.time_column: 'signed up'" in n for n in draft.review)
    assert draft.task == "classification" and draft.spec["split"]["method"] == "hash"
    # Three classes, the smallest under 100 rows: accuracy above the largest class's share.
    counts = pd.Series(_awkward()["species"]).value_counts(normalize=True)
    assert draft.spec["promotion"]["metric"] == "accuracy"
    assert counts.max() < draft.spec["promotion"]["thresholds"]["accuracy"] < 1.0

    by_kind: dict[tuple[str, str], dict] = {(e["type"], e["kwargs"]["column"]): e for e in
                                           draft.spec["validation"]["expectations"]}  # fmt: skip
    assert by_kind[("expect_column_values_to_be_unique", "sample_id")].get("severity", "error") == "error"
    assert by_kind[("expect_column_values_to_be_in_set", "species")]["kwargs"]["value_set"] == [
        "setosa", "versicolor", "virginica"]  # fmt: skip
    gaps = by_kind[("expect_column_values_to_not_be_null", "x.y")]
    assert gaps["severity"] == "warning" and 0.5 < gaps["kwargs"]["mostly"] < 0.9
    full = by_kind[("expect_column_values_to_not_be_null", "petal width (cm)")]
    assert full.get("severity", "error") == "error"
    between = by_kind[("expect_column_values_to_be_between", "petal width (cm)")]["kwargs"]
    frame = _awkward()
    assert between["min_value"] <= frame["petal width (cm)"].min() and between["max_value"] >= frame[
        "petal width (cm)"].max()  # fmt: skip
    codes = by_kind[("expect_column_values_to_be_between", "a/b")]["kwargs"]  # whole numbers, whole bounds
    assert (codes["min_value"], codes["max_value"]) == (0, 4) and isinstance(codes["max_value"], int)
    cafe = by_kind[("expect_column_values_to_be_in_set", "café")]
    assert cafe["severity"] == "warning" and set(cafe["kwargs"]["value_set"]) == {"noir", "crème", "au lait"}
    # 'yes'/'no' are booleans in YAML 1.1: safe_dump must quote them so they stay text.
    assert yaml.safe_load(draft.yaml_text())["validation"] == draft.spec["validation"]

    written = write_draft(draft, tmp_path / "project")
    spec = load_spec(tmp_path / "project" / "include" / "pipelines" / "iris_like.yaml")
    assert spec.data.features.numeric == ["petal width (cm)", "a/b", "x.y"]
    assert spec.data.features.categorical == ["café", "1st"]
    assert len(written) == 4
    for kind, builder in (("training", "build_training_dag"), ("scoring", "build_scoring_dag"),
                          ("monitoring", "build_monitoring_dag")):  # fmt: skip
        source = (tmp_path / "project" / "dags" / f"iris_like_{kind}.py").read_text()
        tree = ast.parse(source)
        assert f"from airflow_mlops.factories import {builder}" in source
        assert '"include" / "pipelines" / "iris_like.yaml"' in source
        assert sum(isinstance(node, ast.ImportFrom | ast.Import | ast.Assign) for node in tree.body) == 3
    assert main(["validate-spec", str(tmp_path / "project" / "include" / "pipelines" / "iris_like.yaml")]) == 0


def test_regression_without_id_splits_randomly_and_has_no_id_column(tmp_path):
    rng = np.random.default_rng(1)
    rows = 400
    frame = pd.DataFrame({"size m2": rng.uniform(20, 200, rows), "rooms": rng.integers(1, 6, rows),
                          "city": rng.choice(["a", "b", "c"], rows)})  # fmt: skip
    frame["price"] = frame["size m2"] * 3000 + rng.normal(0, 10_000, rows)
    path = tmp_path / "houses.parquet"
    frame.to_parquet(path)
    table = scan(str(path), "price")
    draft = draft_spec(table, "price", validate=False)
    assert draft.task == "regression" and "id_column" not in draft.spec["data"]
    assert draft.spec["data"]["dtypes"] == {"price": "float"}
    assert draft.spec["split"]["method"] == "random"
    assert draft.spec["promotion"] == {"metric": "r2", "min_improvement": 0.0, "thresholds": {"r2": 0.0}}
    assert [c["estimator"] for c in draft.spec["model"]["candidates"]] == [
        "hist_gradient_boosting_regressor", "ridge", "random_forest_regressor"]  # fmt: skip
    assert any("no id column found" in note for note in draft.review)
    if ID_OPTIONAL:  # data.id_column optional (another branch): the id-less draft validates
        parse_spec(draft.yaml_text())
        draft_spec(table, "price")
    else:
        with pytest.raises(DraftError, match=r"no id column found .* needs data\.id_column"):
            draft_spec(table, "price")


def test_type_inference_of_text_values():
    assert infer_kind(pd.Series(["01234", "02000", None])) == "string"  # zip codes keep their zeros
    assert infer_kind(pd.Series([" 3", "4 ", "5"])) == "int"
    assert infer_kind(pd.Series(["1.5", "2", None])) == "float"
    assert infer_kind(pd.Series(["true", "False"])) == "bool"
    assert infer_kind(pd.Series(["2024-01-02", "2024-02-03T10:00:00"])) == "datetime"
    assert infer_kind(pd.Series(["a", "1"])) == "string"
    assert infer_kind(pd.Series([None, None], dtype=object)) == "empty"
    assert infer_kind(pd.Series(["1", "inf"])) == "infinite"
    assert pipeline_name("s3://b/exports/Sales Data-2024.csv.gz") == "sales_data_2024"
    assert pipeline_name("2024.csv") == "p_2024"


def test_later_text_in_a_numeric_column_demotes_it_and_rows_beyond_the_profile_are_counted(tmp_path):
    rng = np.random.default_rng(2)
    rows = 5000
    frame = pd.DataFrame({"id": range(rows), "amount": rng.uniform(0, 100, rows).round(2).astype(str),
                          "store_id": rng.integers(1, 20, rows), "label": rng.integers(0, 2, rows)})  # fmt: skip
    frame.loc[4000, "amount"] = "n/a (refund)"
    path = tmp_path / "sales.csv"
    frame.to_csv(path, sep=";", index=False)
    table = scan(str(path), "label", sample_rows=1000)
    assert table.delimiter == ";" and table.rows == table.profiled_rows == rows
    assert table.columns["amount"].kind == "string"  # the first 1,000 rows looked numeric
    draft = draft_spec(table, "label")
    assert draft.spec["data"]["source"]["csv"] == {"delimiter": ";"}
    assert "amount" in draft.dropped  # now text with thousands of values
    assert draft.spec["data"]["id_column"] == "id"
    assert draft.spec["data"]["features"]["categorical"] == ["store_id"]  # an id-named code, not a number
    assert draft.spec["data"]["dtypes"] == {"label": "int", "store_id": "int"}
    assert draft.spec["promotion"]["metric"] == "roc_auc"

    partial = scan(str(path), "label", sample_rows=1000, profile_rows=2000)
    assert (partial.rows, partial.profiled_rows) == (rows, 2000)
    draft = draft_spec(partial, "label")
    checks = [e for e in draft.spec["validation"]["expectations"] if e["type"].endswith("not_be_null")]
    assert checks and all(e.get("severity") == "warning" for e in checks if e["kwargs"]["column"] != "id")
    assert any("only the first 2,000 of 5,000 rows" in note for note in draft.review)


def _table(tmp_path: Path, frame: pd.DataFrame, name: str = "data.csv") -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(
    ("case", "label", "message"),
    [
        ("missing", "y", "no such file"),
        ("suffix", "y", "cannot tell the file format"),
        ("binary", "y", "binary file"),
        ("no_label", "target", r"no column 'target' to use as the label; the columns are 'id', 'x', 'y'"),
        ("all_null", "y", "label 'y' is empty in every row"),
        ("few_rows", "y", "only 30 labeled row"),
        ("one_class", "y", "single class"),
        ("text_regression", "y", "not numeric; regression needs numbers"),
        ("date_label", "y", "label 'y' holds dates"),
        ("no_feature", "y", "no usable feature column besides the label ('x': constant (one value)"),
    ],
)
def test_bad_input_is_refused_with_exit_2_and_nothing_written(tmp_path, capsys, case, label, message):
    rows = 30 if case == "few_rows" else 200
    frame = pd.DataFrame({"id": range(rows), "x": np.arange(rows) % 7, "y": np.arange(rows) % 2})
    uri = _table(tmp_path, frame)
    task = []
    if case == "missing":
        uri = str(tmp_path / "nope.csv")
    elif case == "suffix":
        uri = _table(tmp_path, frame, "data.txt")
    elif case == "binary":
        Path(uri).write_bytes(b"\x00\x01\x02binary" * 100)
    elif case == "all_null":
        uri = _table(tmp_path, frame.assign(y=np.nan))
    elif case == "one_class":
        uri = _table(tmp_path, frame.assign(y=1))
    elif case == "date_label":
        uri = _table(tmp_path, frame.assign(y=pd.Timestamp("2024-01-01") + pd.to_timedelta(frame["id"] % 3, "D")))
    elif case == "no_feature":
        uri = _table(tmp_path, frame.drop(columns="id").assign(x=1))
    elif case == "text_regression":
        uri = _table(tmp_path, frame.assign(y=np.where(frame["y"] == 1, "a", "b")))
        task = ["--task", "regression"]
    out = tmp_path / "project"
    assert main(["init", uri, "--label", label, "--output-dir", str(out), *task]) == 2
    error = capsys.readouterr().err
    assert error.startswith("init: ") and message in error.replace("\n", " "), error
    assert uri.split("/")[-1] in error  # the file is named
    assert not out.exists()


def test_existing_files_are_kept_unless_forced(tmp_path, capsys):
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"id": range(200), "x": rng.normal(size=200), "y": rng.integers(0, 2, 200)})
    uri = "file://" + _table(tmp_path, frame, "churn2.csv")
    out = tmp_path / "project"
    assert main(["init", uri, "--label", "y", "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "wrote" in printed and "review: " in printed and "id: 'id'" in printed
    assert "copy churn2.csv there to train" in printed
    spec_file = out / "include" / "pipelines" / "churn2.yaml"
    assert load_spec(spec_file).data.source.uri is None  # trains on what lands in the inbox
    assert main(["init", uri, "--label", "y", "--output-dir", str(out), "--read-file", "--force"]) == 0
    assert load_spec(spec_file).data.source.uri == str(tmp_path / "churn2.csv")
    spec_file.write_text(spec_file.read_text() + "# my edit\n")
    assert main(["init", uri, "--label", "y", "--output-dir", str(out)]) == 2
    assert "would overwrite" in capsys.readouterr().err and spec_file.read_text().endswith("# my edit\n")
    assert main(["init", uri, "--label", "y", "--output-dir", str(out), "--force"]) == 0
    assert not spec_file.read_text().endswith("# my edit\n")
    assert not [p for p in out.rglob("*") if p.name.startswith(".tmp-")]


def test_the_drafted_spec_trains_and_evaluates_without_edits(tmp_path, mlops_home):
    from airflow_mlops.core.data import stages as data_stages
    from airflow_mlops.core.model import stages as model_stages
    from airflow_mlops.core.registry.client import Registry

    rng = np.random.default_rng(4)
    rows = 400
    frame = pd.DataFrame({"customer_id": [f"c{i}" for i in range(rows)], "tenure": rng.integers(0, 60, rows),
                          "charges": rng.normal(70, 20, rows).round(2), "plan": rng.choice(["a", "b", "c"], rows),
                          "notes": [f"called on day {i}" for i in range(rows)]})  # fmt: skip
    frame.loc[rng.random(rows) < 0.05, "charges"] = np.nan
    signal = -0.08 * frame["tenure"] + np.where(frame["plan"] == "a", 1.5, 0) + rng.normal(0, 0.5, rows)
    frame["churned"] = np.where(signal > np.median(signal), "yes", "no")
    uri = _table(tmp_path, frame, "customers.csv")
    assert main(["init", uri, "--label", "churned", "--output-dir", str(tmp_path / "project"), "--read-file"]) == 0
    spec = load_spec(tmp_path / "project" / "include" / "pipelines" / "customers.yaml")
    assert spec.data.id_column == "customer_id" and spec.data.features.categorical == ["plan"]

    registry = Registry(f"sqlite:///{mlops_home}/mlflow.db")
    lineage = {"dag_id": "customers_training", "run_id": "r1"}
    dataset = data_stages.ingest_labeled(spec, "r1")  # reads data.source.uri: the file itself
    assert dataset["rows"] == rows
    data_stages.validate_dataset(spec, dataset, "r1")  # the drafted expectations hold on their own file
    split = data_stages.split_dataset(spec, dataset, "r1")
    training = model_stages.train_model(spec, registry, split, dataset, lineage)
    assert training["trials"] == 4
    evaluation = model_stages.evaluate_candidate(spec, registry, training, split["test"]["uri"])
    metric, bar = spec.promotion.metric, spec.promotion.thresholds[spec.promotion.metric]
    assert evaluation["candidate"][metric] >= bar
    # Packaged (ONNX parity) and gated like any pipeline: the first model passes the drafted gate.
    package = model_stages.package_candidate(spec, registry, training, split["test"]["uri"])
    registered = release.register_candidate(spec, registry, training, evaluation, dataset, split, lineage, package)
    gate = release.gate_candidate(spec, registry, registered, evaluation, package)
    assert gate["promote"], gate["reasons"]


def test_the_drafted_dag_files_load_in_airflow_without_heavy_imports(tmp_path):
    from tests.dags.test_dag_integrity import _probe

    path = tmp_path / "flowers.csv"
    _awkward().to_csv(path, index=False)
    assert main(["init", str(path), "--label", "species", "--output-dir", str(tmp_path / "project")]) == 0
    probe = _probe(tmp_path / "project" / "dags", tmp_path)
    assert probe["errors"] == {} and probe["heavy"] == []
    assert set(probe["dags"]) == {"flowers_training", "flowers_scoring", "flowers_monitoring"}
    assert "data.ingest" in probe["dags"]["flowers_training"]["tasks"]


def test_an_s3_file_is_read_through_ingestion_and_named_in_the_spec(bucket, tmp_path):  # noqa: F811
    from airflow_mlops.core.io import storage

    frame = _awkward(rows=200)
    local = tmp_path / "upload.parquet"
    frame.to_parquet(local)
    uri = f"s3://{bucket}/exports/flowers.parquet"
    storage.put_file(str(local), uri)
    draft = draft_from_file(uri, "species", read_file=True)
    assert draft.scan.rows == 200 and draft.spec["data"]["source"] == {"uri": uri}
    assert draft.name == "flowers" and any("data.source.conn_id" in note for note in draft.review)
    with pytest.raises(DraftError, match="no such file"):
        draft_from_file(f"s3://{bucket}/exports/missing.csv", "species")


def test_a_rare_class_gets_a_stratified_split_even_with_an_id(tmp_path):
    rng = np.random.default_rng(5)
    rows = 600
    frame = pd.DataFrame({"id": range(rows), "x": rng.normal(size=rows), "fraud": 0})
    frame.loc[rng.choice(rows, 20, replace=False), "fraud"] = 1  # 20 positives: a hash split may leave none in test
    draft = draft_from_file(_table(tmp_path, frame, "tx.csv"), "fraud")
    assert draft.spec["data"]["id_column"] == "id" and draft.spec["split"]["method"] == "stratified"
    assert draft.spec["promotion"]["metric"] == "roc_auc"
    assert any("imbalanced" in note for note in draft.review) and any("fewer than 50 rows" in n for n in draft.review)
