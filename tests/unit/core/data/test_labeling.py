"""Labeling from a rule, a join with a label source, or a function; unlabeled rows are counted."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from airflow_mlops.core.data import ingest, sources, synthetic
from airflow_mlops.core.io import tables
from airflow_mlops.spec import LabelingSpec, SpecError, parse_spec
from tests.conftest import EXAMPLE_SPEC

pytestmark = pytest.mark.unit


def label_by_support_calls(frame: pd.DataFrame) -> pd.Series:
    """A labeling function as a spec would name it: 'tests.unit.core.data.test_labeling:label_by_support_calls'."""
    return (pd.to_numeric(frame["support_calls"]) >= 3).astype("int64")


def _unlabeled_data(tmp_path: Path, rows: int = 400) -> str:
    uri = str(tmp_path / "data.parquet")
    tables.write_parquet(synthetic.churn_batch(rows, seed=1).drop(columns=["churned"]), uri)
    return uri


def _labeling(spec, **labeling):
    return spec.model_copy(update={"labeling": LabelingSpec(**labeling)})


def _ingest(spec, uri: str, tmp_path: Path) -> tuple[ingest.IngestResult, pd.DataFrame]:
    result = ingest.ingest(spec, [uri], str(tmp_path / "out.parquet"))
    return result, tables.read_table(result.uri)


def test_rule_labels_every_row(spec, tmp_path):
    uri = _unlabeled_data(tmp_path)
    result, data = _ingest(_labeling(spec, rule="support_calls >= 3 and tenure_months < 24"), uri, tmp_path)
    source = tables.read_table(uri)
    expected = ((source["support_calls"] >= 3) & (source["tenure_months"] < 24)).astype(int)
    assert result.unlabeled_rows == 0 and data["churned"].tolist() == expected.tolist()


def test_rule_sees_typed_columns_in_csv_files(spec, tmp_path):
    uri = str(tmp_path / "data.csv")
    synthetic.churn_batch(300, seed=1).drop(columns=["churned"]).to_csv(uri, index=False)
    result, data = _ingest(_labeling(spec, rule="support_calls >= 3"), uri, tmp_path)
    assert result.rows == 300 and data["churned"].tolist() == (data["support_calls"] >= 3).astype(int).tolist()


def test_join_labels_the_rows_whose_label_arrived_and_counts_the_rest(spec, tmp_path):
    uri = _unlabeled_data(tmp_path)
    truth = synthetic.churn_batch(400, seed=1)[["customer_id", "churned"]].head(250)
    truth.rename(columns={"churned": "outcome"}).to_csv(tmp_path / "labels.csv", index=False)
    joined = _labeling(spec, join={"uri": str(tmp_path / "labels.csv"), "on": "customer_id", "column": "outcome"})
    result, data = _ingest(joined, uri, tmp_path)
    assert result.rows == 250 and result.unlabeled_rows == 150
    assert data.set_index("customer_id")["churned"].to_dict() == truth.set_index("customer_id")["churned"].to_dict()


def test_function_labels_rows(spec, tmp_path):
    uri = _unlabeled_data(tmp_path)
    named = _labeling(spec, function="tests.unit.core.data.test_labeling:label_by_support_calls")
    _, data = _ingest(named, uri, tmp_path)
    assert data["churned"].tolist() == (data["support_calls"] >= 3).astype(int).tolist()


@pytest.mark.parametrize(
    ("labeling", "message"),
    [
        ({"rule": "support_calls + 1"}, "must give true/false"),
        ({"rule": "no_such_column > 1"}, "cannot be evaluated"),
        ({"function": "tests.unit.core.data.test_labeling:nothing_here"}, "cannot import labeling.function"),
        ({"join": {"uri": "{tmp}/dup.csv", "on": "customer_id", "column": "y"}}, "several labels for key(s) ['a']"),
        ({"join": {"uri": "{tmp}/dup.csv", "on": "customer_id", "column": "outcome"}}, "lacks column(s) ['outcome']"),
    ],
)
def test_labeling_errors_are_named(spec, tmp_path, labeling, message):
    pd.DataFrame({"customer_id": ["a", "a"], "y": [1, 0]}).to_csv(tmp_path / "dup.csv", index=False)
    if "join" in labeling:
        labeling = {"join": {**labeling["join"], "uri": labeling["join"]["uri"].format(tmp=tmp_path)}}
    uri = _unlabeled_data(tmp_path)
    with pytest.raises(sources.IngestError) as err:
        ingest.ingest(_labeling(spec, **labeling), [uri], str(tmp_path / "out.parquet"))
    assert message in str(err.value)


def test_spec_needs_exactly_one_labeling_method():
    raw = yaml.safe_load(EXAMPLE_SPEC.read_text())
    raw["labeling"] = {"rule": "a > 1", "function": "x.y:z"}
    with pytest.raises(SpecError, match=r"exactly one of rule, join, function; got \['rule', 'function'\]"):
        parse_spec(yaml.safe_dump(raw))
    raw["labeling"] = {"function": "not a path"}
    with pytest.raises(SpecError, match=r"must look like 'package\.module:function'"):
        parse_spec(yaml.safe_dump(raw))
