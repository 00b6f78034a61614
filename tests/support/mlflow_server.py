"""A real ``mlflow server`` (SQLite, a local artifact folder) on a free port, for component tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from airflow_mlops.devstack.processes import free_port


@contextmanager
def mlflow_server(root: Path) -> Iterator[str]:
    """Start ``mlflow server`` with its store and artifacts under ``root``; its URL while the block runs."""
    port = free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    process = subprocess.Popen(
        [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
         "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "MLFLOW_TRACKING_URI": ""},
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{uri}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("mlflow server did not come up in 90 s")
    try:
        yield uri
    finally:
        process.terminate()
        process.wait(20)
