"""Enrichment joins a second source by key; the synthetic generator is a source too."""

from __future__ import annotations

import pandas as pd
import pytest

from airflow_mlops.core.data import ingest, sources, synthetic
from airflow_mlops.core.io import tables
from airflow_mlops.spec import EnrichSpec, FeaturesSpec, SourceSpec

pytestmark = pytest.mark.unit


def _with_enrichment(spec, *rules, numeric_extra=()):
    features = FeaturesSpec(numeric=[*spec.data.features.numeric, *numeric_extra],
                            categorical=spec.data.features.categorical)  # fmt: skip
    data = spec.data.model_copy(update={"enrich": [EnrichSpec(**r) for r in rules], "features": features})
    return spec.model_copy(update={"data": data})


def _regions(tmp_path, rows=None):
    rows = rows or [("north", 1.0), ("south", 2.0), ("east", 3.0), ("west", 4.0)]
    uri = str(tmp_path / "regions.csv")
    pd.DataFrame(rows, columns=["region", "regional_index"]).to_csv(uri, index=False)
    return uri


def _data(tmp_path, frame=None):
    return tables.write_parquet(synthetic.churn_batch(400, seed=1) if frame is None else frame,
                                str(tmp_path / "data.parquet"))  # fmt: skip


def test_enrichment_adds_columns_that_can_be_features(spec, tmp_path):
    enriched = _with_enrichment(spec, {"uri": _regions(tmp_path), "on": "region", "columns": ["regional_index"]},
                                numeric_extra=["regional_index"])  # fmt: skip
    result = ingest.ingest(enriched, [_data(tmp_path)], str(tmp_path / "out.parquet"))
    data = tables.read_table(result.uri)
    expected = data["region"].map({"north": 1.0, "south": 2.0, "east": 3.0, "west": 4.0})
    assert data["regional_index"].tolist() == expected.tolist()
    assert result.profile["columns"]["regional_index"]["max"] == 4.0


def test_left_join_keeps_unmatched_rows_and_inner_join_drops_them(spec, tmp_path):
    partial = _regions(tmp_path, rows=[("north", 1.0)])
    left = _with_enrichment(spec, {"uri": partial, "on": "region", "columns": ["regional_index"]})
    inner = _with_enrichment(spec, {"uri": partial, "on": "region", "columns": ["regional_index"], "how": "inner"})
    data_uri = _data(tmp_path)
    assert ingest.ingest(left, [data_uri], str(tmp_path / "l.parquet")).rows == 400
    kept = ingest.ingest(inner, [data_uri], str(tmp_path / "i.parquet"))
    assert kept.rows == int((synthetic.churn_batch(400, seed=1)["region"] == "north").sum())


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"on": "region", "columns": ["regional_index"], "dup": True}, "several rows for key(s) ['north']"),
        ({"on": "region", "columns": ["nope"]}, "enrichment source lacks column(s) ['nope']"),
        ({"on": "region", "columns": ["plan"], "extra": True}, "enrichment columns ['plan'] already exist"),
    ],
)
def test_enrichment_problems_are_named(spec, tmp_path, rule, message):
    rows = [("north", 1.0), ("north", 2.0)] if rule.pop("dup", False) else None
    uri = _regions(tmp_path, rows)
    if rule.pop("extra", False):
        pd.DataFrame({"region": ["north"], "plan": ["x"]}).to_csv(uri, index=False)
    with pytest.raises(sources.IngestError) as err:
        ingest.ingest(_with_enrichment(spec, {"uri": uri, **rule}), [_data(tmp_path)], str(tmp_path / "o.parquet"))
    assert message in str(err.value)


def test_generator_is_a_source(spec, tmp_path):
    source = SourceSpec(uri="generator://churn?rows=1500&seed=4&drift=0.3", chunk_rows=1000)
    generated = spec.model_copy(update={"data": spec.data.model_copy(update={"source": source})})
    uris = sources.resolve_uris(source.uri)
    result = ingest.ingest(generated, uris, str(tmp_path / "gen.parquet"))
    expected = synthetic.churn_batch(1500, seed=4, drift=0.3)
    assert result.rows == 1500
    assert tables.read_table(result.uri)["customer_id"].tolist() == expected["customer_id"].tolist()
    with pytest.raises(sources.IngestError, match="unknown generator 'nope'"):
        ingest.ingest(generated, ["generator://nope"], str(tmp_path / "x.parquet"))
