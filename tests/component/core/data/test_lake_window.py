"""What a training run reads from the lake: every file its claims delivered plus the history
window, in landing order; and a re-landed copy of a file is set aside at claim time."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from airflow_mlops import layout
from airflow_mlops.core.data import lake_window, synthetic
from airflow_mlops.core.data import stages as data_stages
from airflow_mlops.core.io import storage
from airflow_mlops.core.landing import delivery
from airflow_mlops.core.landing import inbox as landing
from airflow_mlops.spec import parse_spec
from tests.component.core.io.test_s3 import bucket, s3_server  # noqa: F401  (fixtures: moto S3 on 127.0.0.1)

pytestmark = pytest.mark.component

SPEC = """
name: churn
data:
  id_column: customer_id
  label: churned
  dtypes: {churned: int}
  window_batches: 4
  features:
    numeric: [tenure_months, monthly_charges, support_calls, usage_gb]
    categorical: [plan, region, payment_method]
validation:
  min_rows: 10
  expectations:
    - {type: expect_column_values_to_be_unique, kwargs: {column: customer_id}}
model: {estimator: logistic_regression}
"""


@pytest.fixture
def zone(mlops_home, tmp_path):
    inbox = Path(layout.landing_dir("churn", "training"))
    inbox.mkdir(parents=True)
    return inbox, Path(layout.lake_dir("churn", "labeled"))


def _land(inbox: Path, name: str, seed: int, age: float | None = None) -> Path:
    path = inbox / name
    batch = synthetic.churn_batch(40, seed=seed)
    batch["customer_id"] = [f"s{seed}-{i}" for i in range(len(batch))]  # ids unique across batches
    batch.to_parquet(path, index=False)
    if age is not None:
        os.utime(path, (time.time() - age, time.time() - age))
    return path


def _original(uri: str) -> str:
    """The name a lake file had in the inbox (``<landing time>-<random>-<name>``)."""
    return uri.rsplit("/", 1)[-1].split("-", 2)[2]


def _operator_context(op, payloads, run_id="run-1"):
    events = [SimpleNamespace(extra={"from_trigger": True, "payload": p}) for p in payloads]
    return {
        "run_id": run_id,
        "ds": "2026-12-01",
        "dag": SimpleNamespace(dag_id="churn_training"),
        "task": op,
        "triggering_asset_events": {"mlops.churn.landing.training": events},
    }


def _ingest_operator(tmp_path):
    from airflow_mlops.operators.data import IngestLabeledDataOperator

    spec_path = tmp_path / "churn.yaml"
    spec_path.write_text(SPEC)
    return IngestLabeledDataOperator(task_id="ingest", spec_path=str(spec_path))


# -- part 2: exactly once for training ------------------------------------------------------------


def test_a_run_reads_every_file_its_claims_delivered_plus_the_history_window(zone, tmp_path):
    inbox, lake = zone
    for index in range(6):  # history: six batches landed before, one claim each
        _land(inbox, f"old-{index}.parquet", seed=index, age=1000 - index)
        landing.claim(str(inbox), str(lake), (".parquet",))
    for index in range(10):  # ten files landing together: one claim, more files than window_batches
        _land(inbox, f"new-{index}.parquet", seed=100 + index, age=100 - index)
    record = landing.claim(str(inbox), str(lake), (".parquet",))
    assert record is not None and len(record.claimed) == 10
    op = _ingest_operator(tmp_path)
    result = op.execute(_operator_context(op, [record.payload()]))
    assert set(record.claimed) <= set(result["sources"])  # all ten read: none acknowledged and left unread
    assert sorted(result["claimed_sources"]) == sorted(record.claimed)
    history = [uri for uri in result["sources"] if uri not in record.claimed]
    assert [_original(uri) for uri in history] == [f"old-{i}.parquet" for i in range(2, 6)]  # the newest 4
    assert result["rows"] == 40 * 14 and result["claimed_left_out"] == {}
    # A calendar run (no claims) reads the newest window_batches only.
    calendar = op.execute(_operator_context(op, [], run_id="scheduled-1"))
    assert calendar["sources"] == record.claimed[-4:] and calendar["claimed_sources"] == []


def test_a_claimed_file_that_is_not_read_is_reported_with_the_reason(zone, tmp_path, caplog):
    inbox, lake = zone
    _land(inbox, "a.parquet", seed=1, age=20)
    _land(inbox, "b.parquet", seed=2, age=10)
    record = landing.claim(str(inbox), str(lake), (".parquet",))
    assert record is not None
    gone = record.claimed[0]
    os.remove(gone)  # e.g. quarantined by an earlier run's validation
    op = _ingest_operator(tmp_path)
    with caplog.at_level("WARNING"):
        result = op.execute(_operator_context(op, [record.payload()]))
    assert result["claimed_sources"] == record.claimed[1:]
    why = "it is no longer in the lake (quarantined or removed since it was claimed)"
    assert result["claimed_left_out"] == {gone: why}
    assert f"claimed file {gone} was not trained on" in caplog.text


# -- part 3: a re-landed copy is set aside at claim time ---------------------------------------------


def test_a_relanded_copy_is_set_aside_at_claim_time_and_never_blocks_training(zone, tmp_path, caplog):
    inbox, lake = zone
    original = _land(inbox, "export.parquet", seed=1)
    content = original.read_bytes()
    first = landing.claim(str(inbox), str(lake), (".parquet",))
    assert first is not None
    (inbox / "export.parquet").write_bytes(content)  # the same file landed again, same name
    (inbox / "export-copy.parquet").write_bytes(content)  # and under a new name
    _land(inbox, "fresh.parquet", seed=2)
    with caplog.at_level("WARNING", logger="airflow_mlops.core.landing.content"):
        second = landing.claim(str(inbox), str(lake), (".parquet",))
    assert second is not None and [u.rsplit("-", 1)[-1] for u in second.claimed] == ["fresh.parquet"]
    copies = ["export-copy.parquet", "export.parquet"]
    assert sorted(d["source"].rsplit("/", 1)[-1] for d in second.duplicates) == copies
    assert {d["same_as"] for d in second.duplicates} == set(first.claimed)
    assert second.payload()["duplicates"] == copies
    assert "has the same content as" in caplog.text
    assert os.listdir(inbox) == [] and len(os.listdir(lake)) == 2  # never blocks, never enters the lake
    manifest = storage.read_json(f"{second.uri}/_manifest.json")
    assert all(f["fingerprint"].startswith("sha256:") for f in manifest["files"])
    # Only copies: nothing is delivered, and the claim is closed (not redelivered).
    (inbox / "again.parquet").write_bytes(content)
    assert landing.claim(str(inbox), str(lake), (".parquet",)) is None and os.listdir(inbox) == []
    assert set(delivery.open_claims(str(lake))) == {first.claim_id, second.claim_id}
    # Training is not blocked by the uniqueness expectation on the id: the copy was never landed.
    spec = parse_spec(SPEC)
    dataset = data_stages.ingest_labeled(spec, "run-1", claimed=second.claimed)
    assert dataset["duplicates_dropped"] == 0 and len(dataset["sources"]) == 2
    data_stages.validate_dataset(spec, dataset, "run-1")


def test_a_copy_whose_first_copy_left_the_lake_is_claimed_again(zone):
    inbox, lake = zone
    content = _land(inbox, "export.parquet", seed=1).read_bytes()
    first = landing.claim(str(inbox), str(lake), (".parquet",))
    os.remove(first.claimed[0])  # quarantined or removed by hand
    (inbox / "export.parquet").write_bytes(content)  # landed again on purpose
    second = landing.claim(str(inbox), str(lake), (".parquet",))
    assert second is not None and len(second.claimed) == 1 and second.duplicates == []


def test_s3_a_relanded_copy_is_recognised_by_etag_and_size_without_reading_it(bucket, monkeypatch):  # noqa: F811
    from airflow_mlops.core.io import s3

    inbox, lake = f"s3://{bucket}/landing/churn/training", f"s3://{bucket}/artifacts/churn/lake/labeled"
    storage.write_bytes(b"same bytes", f"{inbox}/a.parquet")
    first = landing.claim(inbox, lake, (".parquet",))
    assert first is not None
    storage.write_bytes(b"same bytes", f"{inbox}/a-again.parquet")
    client, reads = s3.client_for(inbox), []
    real_get = client.get_object

    def counting_get(**kwargs):
        reads.append(kwargs["Key"])
        return real_get(**kwargs)

    monkeypatch.setattr(client, "get_object", counting_get)
    assert landing.claim(inbox, lake, (".parquet",)) is None  # only a copy
    assert not [key for key in reads if key.endswith("a-again.parquet")]  # fingerprinted from the listing
    assert storage.list_files(inbox) == [] and storage.list_files(lake) == first.claimed


# -- part 4: the window's order is the landing order -------------------------------------------------


def test_files_landing_together_train_by_landing_time_not_by_a_random_name_suffix(zone, monkeypatch):
    import uuid

    inbox, lake = zone
    order = ["d.parquet", "a.parquet", "c.parquet", "e.parquet", "b.parquet", "f.parquet"]  # landing order
    for position, name in enumerate(order):
        _land(inbox, name, seed=position, age=600 - 60 * position)
    suffixes = iter(f"{n:08x}" + "0" * 24 for n in (9, 8, 7, 6, 5, 4))  # random parts that sort backwards
    real = uuid.uuid4
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(next(suffixes, None) or real().hex))
    record = landing.claim(str(inbox), str(lake), (".parquet",))
    assert record is not None
    window = lake_window.select(str(lake), (".parquet",), 3)
    assert [u.rsplit("-", 1)[-1] for u in window.uris] == ["e.parquet", "b.parquet", "f.parquet"]  # the newest 3
    files = storage.read_json(f"{record.uri}/_manifest.json")["files"]  # the landing time, recorded in the claim
    assert [f["source"].rsplit("/", 1)[-1] for f in sorted(files, key=lambda f: f["landed_at"])] == order
    assert [u.rsplit("-", 1)[-1] for u in lake_window.ordered(str(lake), (".parquet",))] == order


def test_files_landed_at_the_same_time_are_ordered_by_the_batch_date_in_their_names():
    same = 1_700_000_000.0
    names = ["sales_2026_11_03.csv", "sales-20261101.csv", "sales-2026-11-02.csv", "notes.csv"]
    keyed = sorted((lake_window.order_key(f"/lake/{name}", same), name) for name in names)
    assert [name for _, name in keyed] == ["notes.csv", "sales-20261101.csv", "sales-2026-11-02.csv",
                                           "sales_2026_11_03.csv"]  # fmt: skip
    assert lake_window.batch_date("run-99999999-2026-02-30-x-2026-03-01.csv") == "2026-03-01"  # invalid dates skipped


def test_the_training_run_records_how_many_claimed_files_it_read_and_left_out():
    from airflow_mlops.core.model.stages import _training_params
    from airflow_mlops.spec import load_spec
    from tests.conftest import EXAMPLE_SPEC

    dataset = {"fingerprint": "f", "sources": ["a", "b", "old"], "claimed_sources": ["a", "b"],
               "claimed_left_out": {"c": "quarantined: column 'x' holds text"}}  # fmt: skip
    params = _training_params(load_spec(EXAMPLE_SPEC), dataset, {})
    assert (params["claimed_files"], params["claimed_files_left_out"], params["source_batches"]) == (3, 1, 3)
    calendar = _training_params(load_spec(EXAMPLE_SPEC), {"fingerprint": "f", "sources": ["old"]}, {})
    assert (calendar["claimed_files"], calendar["claimed_files_left_out"]) == (0, 0)
