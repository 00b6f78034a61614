"""Tables as users bring them: column names with spaces, '/', dots, dashes, unicode, leading digits
and names that clash once sanitised; string labels of several classes; missing values.

Each test drives the real code path a user meets (spec validation, ONNX export and parity, the
serving app, the registered MLflow model loaded the plain MLflow way, batch scoring, drift).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import jsonschema
import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_mlops import layout
from airflow_mlops.core.data import stages as data_stages
from airflow_mlops.core.data import synthetic
from airflow_mlops.core.io import tables
from airflow_mlops.core.landing import inbox as landing
from airflow_mlops.core.model import release
from airflow_mlops.core.model import stages as model_stages
from airflow_mlops.core.model.packaging import export_onnx, onnx_feeds, onnx_parity, onnx_session, session_input_names
from airflow_mlops.core.model.training import feature_frame, fit
from airflow_mlops.core.operations import stages as operate_stages
from airflow_mlops.core.registry.client import Registry, metric_name
from airflow_mlops.serving.app import build_app
from airflow_mlops.serving.config import ServeConfig
from airflow_mlops.serving.deploy import preflight
from airflow_mlops.serving.inprocess import call
from airflow_mlops.spec import SpecError, load_spec, parse_spec

pytestmark = pytest.mark.component

REPO = Path(__file__).resolve().parents[2]
TICKETS = REPO / "include" / "pipelines" / "tickets.yaml"
AWKWARD = ["mean radius", "a b", "a_b", "x/y", "1st", "café", "v.1", "label"]

AWKWARD_SPEC = """
name: awkward
data:
  id_column: "row id"
  label: "target class"
  features:
    numeric: ["mean radius", "a b", "a_b", "x/y", "1st", "café", "v.1"]
    categorical: ["kind-of thing", "label"]
    derived: {ratio: "`mean radius` / (`a b` + 10)"}
model: {estimator: hist_gradient_boosting, params: {max_iter: 15}}
"""


def _awkward_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.normal(size=rows) for c in AWKWARD[:-1]})
    frame["kind-of thing"] = pd.array(rng.choice(["p q", "r/s", "t.u"], rows), dtype="string")
    frame["label"] = pd.array(rng.choice(["x", "y"], rows), dtype="string")
    frame["row id"] = [f"r{i}" for i in range(rows)]
    score = frame["mean radius"] + frame["a_b"] - frame["x/y"] + (frame["kind-of thing"] == "p q").to_numpy(float)
    frame["target class"] = np.where(score > 0.8, "big one", np.where(score < -0.8, "small/none", "mid.dle"))
    frame.loc[:10, "kind-of thing"] = None
    frame.loc[5:15, "a b"] = np.nan
    return frame


def test_names_that_clash_once_sanitised_keep_their_own_graph_inputs_and_parity():
    spec = parse_spec(AWKWARD_SPEC)
    train, test = _awkward_frame(600, 1), _awkward_frame(300, 2)
    model = fit(train, spec)
    onnx_bytes = export_onnx(model, spec)
    session = onnx_session(onnx_bytes)
    names = session_input_names(session)
    assert list(names) == list(spec.data.features.model_inputs)
    assert len(set(names.values())) == len(names)  # "a b" and "a_b" feed two different inputs
    assert names["a b"] != names["a_b"] and names["label"] != "label"  # "label" is an output's name
    report = onnx_parity(model, onnx_bytes, test, spec)
    assert report.passed and report.labels_agree == 1.0, report.as_dict()
    # Swapping the two clashing columns' values changes the answer: each feeds its own input.
    feeds = onnx_feeds(test, spec, names)
    swapped = dict(feeds)
    swapped[names["a b"]], swapped[names["a_b"]] = feeds[names["a_b"]], feeds[names["a b"]]
    assert not np.allclose(session.run(None, feeds)[1], session.run(None, swapped)[1])


@pytest.mark.parametrize(
    ("name", "why"),
    [("", "is empty"), (" padded", "whitespace"), ("new\nline", "control character"), ("x" * 251, "longer than 250")],
)
def test_validate_spec_refuses_a_name_no_reader_can_keep_and_says_why(name, why):
    text = AWKWARD_SPEC.replace('"1st"', json.dumps(name))
    with pytest.raises(SpecError, match=why) as info:
        parse_spec(text, source="awkward.yaml")
    assert "awkward.yaml" in str(info.value) and "numeric feature" in str(info.value)


def test_a_feature_listed_twice_and_a_reserved_name_are_refused():
    with pytest.raises(SpecError, match=r"numeric lists \['a b'\] more than once"):
        parse_spec(AWKWARD_SPEC.replace('"a_b"', '"a b"'))
    with pytest.raises(SpecError, match="reserved for the prediction log"):
        parse_spec(AWKWARD_SPEC.replace('"1st"', "probabilities"))


def test_derived_features_name_awkward_columns_in_backticks():
    spec = parse_spec(AWKWARD_SPEC)
    frame = _awkward_frame(20, 3)
    values = feature_frame(frame, spec)["ratio"].to_numpy()
    expected = (frame["mean radius"] / (frame["a b"] + 10)).to_numpy()
    np.testing.assert_allclose(values, expected)
    with pytest.raises(SpecError, match="not numeric features"):
        parse_spec(AWKWARD_SPEC.replace("`a b`", "`no such column`"))


def test_metric_names_from_columns_are_accepted_by_mlflow_and_stay_apart():
    assert metric_name("psi_wait time/min") == "psi_wait time/min"
    one, other = metric_name("psi_len (a)"), metric_name("psi_len )a(")
    assert one != other and one.startswith("psi_len _a_")


@pytest.fixture
def registry(mlops_home):
    return Registry(f"sqlite:///{mlops_home}/mlflow.db")


def _quick_tickets_spec(tmp_path: Path) -> Path:
    """The tickets example with one quick candidate (the loop, not the search, is under test)."""
    text = (
        TICKETS.read_text()
        .replace("    - estimator: logistic_regression\n      params: {max_iter: 1000}\n", "")
        .replace("params: {max_iter: 80}", "params: {max_iter: 30}")
    )
    path = tmp_path / "tickets.yaml"
    path.write_text(text)
    return path


def _rows_with_gaps(rows: int, seed: int) -> pd.DataFrame:
    frame = synthetic.tickets_batch(rows, seed=seed).drop(columns=["team"]).astype(object)
    frame = frame.where(frame.notna(), None)
    frame.loc[0, "product tier"] = None
    frame.loc[1, "wait time/min"] = None
    frame.loc[2, "channel"] = None
    frame.loc[3, ["product tier", "wait time/min"]] = None
    return frame


def test_multiclass_table_with_awkward_names_trains_serves_and_answers_like_the_registered_model(tmp_path, registry):
    spec_path = _quick_tickets_spec(tmp_path)
    spec = load_spec(spec_path)
    synthetic.land_batch("tickets", layout.landing_dir(spec.name, "training"), dt.date(2026, 1, 1), 2500, 1)
    landing.claim_new_files(
        layout.landing_dir(spec.name, "training"), layout.lake_dir(spec.name, "labeled"), (".parquet",)
    )
    lineage = {"dag_id": "tickets_training", "run_id": "r1"}
    dataset = data_stages.ingest_labeled(spec, "r1")
    data_stages.validate_dataset(spec, dataset, "r1")
    split = data_stages.split_dataset(spec, dataset, "r1")
    training = model_stages.train_model(spec, registry, split, dataset, lineage)
    evaluation = model_stages.evaluate_candidate(spec, registry, training, split["test"]["uri"])
    package = model_stages.package_candidate(spec, registry, training, split["test"]["uri"])
    assert package["parity"]["passed"] is True, package
    registered = release.register_candidate(spec, registry, training, evaluation, dataset, split, lineage, package)
    gate = release.gate_candidate(spec, registry, registered, evaluation, package)
    assert gate["promote"], gate["reasons"]
    # The promote task's preflight serves the candidate in-process and checks every class's probability.
    checked = preflight(spec, registry, gate["version"], split["test"]["uri"])
    assert checked["rows"] == spec.deployment.smoke_rows and checked["max_abs_diff"] <= 1e-4
    release.promote_candidate(registry, gate, by="test")
    card = registry.client.get_model_version(spec.registered_model_name, "1").description
    assert "wait time/min" in card and "ticket length (words)" in card

    rows = _rows_with_gaps(12, seed=9)
    app = build_app(ServeConfig(spec_path=str(spec_path), tracking_uri=registry.tracking_uri, tokens=("t" * 16,)))

    async def serve() -> tuple[int, dict, dict]:
        await app.startup()
        try:
            body = json.dumps({"instances": rows.to_dict(orient="records")}).encode()
            status, _, answer = await call(app, "POST", "/v1/predict", body, {"Authorization": "Bearer " + "t" * 16})
            _, _, described = await call(app, "GET", "/v1/model", headers={"Authorization": "Bearer " + "t" * 16})
            _, _, document = await call(app, "GET", "/openapi.json")
        finally:
            await app.shutdown()
        return status, json.loads(answer), json.loads(described), json.loads(document)

    status, answer, described, document = asyncio.run(serve())
    assert status == 200, answer
    response_schema = document["components"]["schemas"]["PredictResponse"]
    jsonschema.validate(answer, response_schema)  # the app's own OpenAPI document describes its answer
    assert "probabilities" in response_schema["properties"]
    classes = sorted(synthetic.TEAMS)
    assert described["classes"] == classes and "wait time/min" in described["inputs"]
    assert [sorted(p) for p in answer["probabilities"]] == [classes] * 12
    served = np.array([[p[c] for c in classes] for p in answer["probabilities"]])
    np.testing.assert_allclose(served.sum(axis=1), 1.0, atol=1e-5)
    assert answer["scores"] == pytest.approx(served.max(axis=1).tolist(), abs=1e-6)

    # The registered version, loaded the plain MLflow way, takes the same raw rows: None and NaN
    # for a missing category or number alike, no derived column, the user's column names.
    model_uri = f"models:/{spec.registered_model_name}/1"
    raw = rows.copy()
    raw.loc[3, ["product tier", "wait time/min"]] = np.nan  # NaN where the served row had None
    with registry.process_uris():  # a user of plain MLflow sets the tracking URI first
        assert mlflow.pyfunc.load_model(model_uri).predict(raw).tolist() == answer["predictions"]
        probabilities = mlflow.sklearn.load_model(model_uri).predict_proba(raw)
    np.testing.assert_allclose(probabilities, served, atol=1e-4)

    # Batch scoring and the prediction log keep the user's names and every class's probability;
    # drift of the predictions compares the share of every class.
    synthetic.land_batch("tickets", layout.landing_dir(spec.name, "scoring"), dt.date(2026, 1, 8), 2000, 5, 0.8)
    claimed = landing.claim_new_files(
        layout.landing_dir(spec.name, "scoring"), layout.lake_dir(spec.name, "scoring"), (".parquet",)
    )
    summary = operate_stages.score_batches(spec, registry, claimed, "s1")
    log_uri = summary["prediction_log_uris"][0]
    log = tables.read_table(log_uri)
    assert {"ticket id", "wait time/min", "customer.age", "words_per_prior_ticket"} <= set(log.columns)
    probability_type = pq.read_schema(log_uri).field("probabilities").type
    assert pa.types.is_map(probability_type) and probability_type.item_type == pa.float64()
    assert sorted(k for k, _ in log["probabilities"].iloc[0]) == classes
    # Delayed labels of the scored rows, keyed by request id: decay is judged on every class's probability.
    landed = tables.read_table(claimed[0])
    truth = dict(zip(landed["ticket id"], landed["team"], strict=True))
    labels = pd.DataFrame({"request_id": log["request_id"], "row": log["row"], "team": log["ticket id"].map(truth)})
    tables.write_parquet(labels, layout.join(layout.labels_dir(spec.name), "labels-1.parquet"))
    drift = operate_stages.monitor_drift(spec, registry, summary["prediction_log_uris"], "m1")
    assert drift["performance"]["labeled_rows"] == 2000
    assert 0.5 < drift["performance"]["metrics"]["roc_auc"] < 1.0  # one-vs-rest over the four teams
    assert drift["drift_detected"] and "wait time/min" in drift["drifted_features"]
    assert drift["prediction_drift"]["drifted"]
    metrics = registry.client.get_run(drift["mlflow_run_id"]).data.metrics
    assert any(name.startswith("psi_ticket length _words_") for name in metrics)
    # every shift statistic is a metric per feature: the normed Wasserstein distance of numbers,
    # the Jensen-Shannon distance of categories, under the same safe names
    assert "wasserstein_wait time/min" in metrics and "jensen_shannon_product tier" in metrics
    assert "prediction_jensen_shannon" in metrics or "prediction_wasserstein" in metrics
