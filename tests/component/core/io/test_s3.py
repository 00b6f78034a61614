"""s3:// sources, artifacts and landing claims against an S3-compatible server on 127.0.0.1 (moto)."""

from __future__ import annotations

import socket

import boto3
import pytest

from airflow_mlops import layout
from airflow_mlops.core.data import stages as data_stages
from airflow_mlops.core.data import synthetic
from airflow_mlops.core.data.sources import IngestError
from airflow_mlops.core.io import s3, storage, tables
from airflow_mlops.core.landing import inbox as landing

pytestmark = pytest.mark.component


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3_server():
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_server, monkeypatch, mlops_home):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": s3_server,
    }.items():
        monkeypatch.setenv(key, value)  # fmt: skip
    name = f"mlops-{_free_port()}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=name)
    return name


def test_storage_round_trip_listing_and_moves(bucket):
    root = f"s3://{bucket}/area"
    storage.write_json({"a": 1}, f"{root}/x.json")
    storage.write_bytes(b"1", f"{root}/d.parquet")
    storage.write_bytes(b"2", f"{root}/sub/e.parquet")
    assert storage.read_json(f"{root}/x.json") == {"a": 1}
    assert storage.list_files(root) == [f"{root}/d.parquet"]
    assert storage.list_files_recursive(root) == [f"{root}/d.parquet", f"{root}/sub/e.parquet"]
    assert storage.glob(f"{root}/*.parquet") == [f"{root}/d.parquet"]
    storage.move(f"{root}/d.parquet", f"{root}/moved.parquet")
    assert not storage.exists(f"{root}/d.parquet") and storage.read_bytes(f"{root}/moved.parquet") == b"1"
    with pytest.raises(FileExistsError):
        storage.move(f"{root}/sub/e.parquet", f"{root}/moved.parquet")


def test_training_data_from_a_dated_s3_prefix_with_artifacts_on_s3(bucket, spec, monkeypatch):
    monkeypatch.setenv("AIRFLOW_MLOPS_ARTIFACT_ROOT", f"s3://{bucket}/artifacts")
    frame = synthetic.churn_batch(1200, seed=1)
    tables.write_parquet(frame.head(600), f"s3://{bucket}/exports/2026-11-22/a.parquet")
    storage.write_bytes(frame.tail(600).to_csv(index=False).encode(), f"s3://{bucket}/exports/2026-11-22/b.csv")
    source = spec.data.source.model_copy(update={"uri": f"s3://{bucket}/exports/{{ds}}/"})
    remote = spec.model_copy(update={"data": spec.data.model_copy(update={"source": source})})

    dataset = data_stages.ingest_labeled(remote, "s3-run", ds="2026-11-22")
    assert dataset["rows"] == 1200 and dataset["uri"].startswith(f"s3://{bucket}/artifacts/churn/runs/s3-run/")
    assert storage.read_json(dataset["profile_uri"])["rows"] == 1200
    data_stages.validate_dataset(remote, dataset, "s3-run")
    split = data_stages.split_dataset(remote, dataset, "s3-run")
    assert sum(split[name]["rows"] for name in ("train", "validation", "test")) == 1200
    assert len(tables.read_table(split["test"]["uri"])) == split["test"]["rows"]


def test_broken_s3_file_is_named_and_copied_to_quarantine(bucket, spec, monkeypatch):
    monkeypatch.setenv("AIRFLOW_MLOPS_ARTIFACT_ROOT", f"s3://{bucket}/artifacts")
    storage.write_bytes(b"customer_id;plan\n1;basic\n", f"s3://{bucket}/in/bad.csv")
    source = spec.data.source.model_copy(update={"uri": f"s3://{bucket}/in/*.csv"})
    remote = spec.model_copy(update={"data": spec.data.model_copy(update={"source": source})})
    with pytest.raises(IngestError, match=r"s3://.*/in/bad\.csv: missing required column"):
        data_stages.ingest_labeled(remote, "s3-bad")
    assert storage.exists(f"s3://{bucket}/in/bad.csv")
    (report,) = storage.glob(f"s3://{bucket}/artifacts/churn/quarantine/s3-bad/*-bad.csv.report.json")
    assert "missing required column" in storage.read_json(report)["error"]


def test_landing_claims_on_s3(bucket):
    inbox, lake = f"s3://{bucket}/landing/churn/training", f"s3://{bucket}/lake"
    storage.write_bytes(b"x", f"{inbox}/batch.parquet")
    claimed = landing.claim_new_files(inbox, lake, (".parquet",))
    assert len(claimed) == 1 and claimed[0].startswith(f"{lake}/") and claimed[0].endswith("-batch.parquet")
    assert storage.list_files(inbox) == [] and landing.claim_new_files(inbox, lake, (".parquet",)) == []
    assert layout.join(lake, "x") == f"s3://{bucket}/lake/x"


def test_an_airflow_aws_connection_serves_s3_access_inside_its_block_only(s3_server, monkeypatch, mlops_home):
    import json

    from airflow_mlops.hooks.aws import s3_store_from_connection

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    connection = {"conn_type": "aws", "login": "conn-key", "password": "conn-secret",
                  "extra": {"endpoint_url": s3_server, "region_name": "us-east-1"}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_MINIO_TEST", json.dumps(connection))
    store = s3_store_from_connection("minio_test")
    assert "conn-secret" not in repr(store) and "conn-key" not in repr(store)
    boto3.client("s3", endpoint_url=s3_server, aws_access_key_id="x", aws_secret_access_key="y",
                 region_name="us-east-1").create_bucket(Bucket="from-connection")  # fmt: skip
    with s3.using(s3.Stores(store)):
        storage.write_json({"ok": True}, "s3://from-connection/probe.json")
        assert storage.read_json("s3://from-connection/probe.json") == {"ok": True}
        assert s3.store_for("s3://from-connection/probe.json") is store
    # Nothing keeps the connection past its block: boto3's own chain serves again.
    assert s3.store_for("s3://from-connection/probe.json").name == "environment"
