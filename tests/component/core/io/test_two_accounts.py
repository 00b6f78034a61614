"""A spec's source on one S3 account and the artifact root on another, in one run.

Two ``moto_server`` processes stand for the two accounts: each has its own buckets and
endpoint, so a request signed for one never reaches the other's data. The source
(``data.source.conn_id``) is on account A; the artifact root (``AIRFLOW_MLOPS_AWS_CONN_ID``)
on account B. The ingest and split tasks run through their operators, the connections given
as ``AIRFLOW_CONN_<ID>`` variables like a deployment gives them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
import yaml

from airflow_mlops.core.data import synthetic
from airflow_mlops.core.io import s3
from tests.conftest import EXAMPLE_SPEC

pytestmark = pytest.mark.component

DAY = "2026-11-22"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def _moto_server(tmp: Path, name: str) -> Iterator[str]:
    """One S3 account: a ``moto_server`` process of its own (its own state, its own endpoint)."""
    port, log_path = _free_port(), tmp / f"moto-{name}.log"
    binary = Path(sys.executable).with_name("moto_server")
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while not _listening(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto_server for account {name} did not start: {log_path.read_text()}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def accounts(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """The endpoints of accounts A and B."""
    tmp = tmp_path_factory.mktemp("accounts")
    with _moto_server(tmp, "a") as endpoint_a, _moto_server(tmp, "b") as endpoint_b:
        yield endpoint_a, endpoint_b


def _client(endpoint: str, key: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=f"{key}-secret",
                        region_name="us-east-1")  # fmt: skip


def _connection(endpoint: str, key: str) -> str:
    return json.dumps({"conn_type": "aws", "login": key, "password": f"{key}-secret",
                       "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}})  # fmt: skip


def _keys(client: Any, bucket: str) -> list[str]:
    return sorted(item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", []))


@pytest.fixture
def two_accounts(accounts, monkeypatch, mlops_home, tmp_path) -> dict[str, Any]:
    """Source bucket on A with one day of labeled rows, artifact bucket on B, and a spec reading A."""
    endpoint_a, endpoint_b = accounts
    # boto3's own chain points nowhere: whatever S3 call no connection serves fails at once.
    for key, value in {"AWS_ACCESS_KEY_ID": "nobody", "AWS_SECRET_ACCESS_KEY": "nobody",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9",
                       "AWS_MAX_ATTEMPTS": "1"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    source_bucket, artifact_bucket = f"source-{_free_port()}", f"artifacts-{_free_port()}"
    client_a, client_b = _client(endpoint_a, "key-a"), _client(endpoint_b, "key-b")
    client_a.create_bucket(Bucket=source_bucket)
    client_b.create_bucket(Bucket=artifact_bucket)
    frame = synthetic.churn_batch(1200, seed=1)
    local = tmp_path / "a.parquet"
    frame.to_parquet(local, index=False)
    client_a.upload_file(str(local), source_bucket, f"exports/{DAY}/a.parquet")

    monkeypatch.setenv("AIRFLOW_CONN_SOURCE_A", _connection(endpoint_a, "key-a"))
    monkeypatch.setenv("AIRFLOW_CONN_ARTIFACTS_B", _connection(endpoint_b, "key-b"))
    monkeypatch.setenv("AIRFLOW_MLOPS_AWS_CONN_ID", "artifacts_b")
    monkeypatch.setenv("AIRFLOW_MLOPS_ARTIFACT_ROOT", f"s3://{artifact_bucket}/root")
    document = yaml.safe_load(EXAMPLE_SPEC.read_text())
    document["data"]["source"] = {"uri": f"s3://{source_bucket}/exports/{{ds}}/", "conn_id": "source_a"}
    spec_path = tmp_path / "churn.yaml"
    spec_path.write_text(yaml.safe_dump(document))
    return {"spec_path": str(spec_path), "a": client_a, "b": client_b,
            "source": source_bucket, "artifacts": artifact_bucket}  # fmt: skip


def test_the_source_is_read_with_its_connection_and_artifacts_written_with_the_roots_one(two_accounts):
    from airflow_mlops.operators.data import IngestLabeledDataOperator, SplitDataOperator

    setup = two_accounts
    context: dict[str, Any] = {"dag": SimpleNamespace(dag_id="churn_training"), "run_id": "two-accounts", "ds": DAY}
    ingest = IngestLabeledDataOperator(task_id="ingest", spec_path=setup["spec_path"])
    dataset = ingest.execute({**context, "task": ingest})  # type: ignore[arg-type]
    assert dataset["rows"] == 1200
    assert dataset["sources"] == [f"s3://{setup['source']}/exports/{DAY}/a.parquet"]
    assert dataset["uri"].startswith(f"s3://{setup['artifacts']}/root/churn/runs/two-accounts/")

    split_op = SplitDataOperator(task_id="split", spec_path=setup["spec_path"], dataset=dataset)
    split = split_op.execute({**context, "task": split_op})  # type: ignore[arg-type]
    assert sum(split[name]["rows"] for name in ("train", "validation", "test")) == 1200

    # Everything the run wrote is on account B; account A still holds only its source file.
    written = _keys(setup["b"], setup["artifacts"])
    for uri in (dataset["uri"], dataset["profile_uri"], split["train"]["uri"], split["test"]["uri"]):
        assert s3.split(uri)[1] in written, uri
    assert [b["Name"] for b in setup["a"].list_buckets()["Buckets"]] == [setup["source"]]
    assert _keys(setup["a"], setup["source"]) == [f"exports/{DAY}/a.parquet"]
    # No connection outlives its task: outside it, boto3's own chain serves again.
    assert s3.store_for(dataset["uri"]).name == "environment"
    assert "key-b-secret" not in json.dumps(split) and "key-a-secret" not in json.dumps(dataset)
    assert os.environ.get("AWS_ACCESS_KEY_ID") == "nobody"  # no connection's key was put in the environment
