"""Shared fixtures: an isolated runtime folder per test and the example spec."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_SPEC = REPO / "include" / "pipelines" / "churn.yaml"


@pytest.fixture
def mlops_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every airflow-mlops root at a fresh temporary folder."""
    for var in ("AIRFLOW_MLOPS_LANDING_ROOT", "AIRFLOW_MLOPS_ARTIFACT_ROOT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AIRFLOW_MLOPS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def spec():
    from airflow_mlops.spec import load_spec

    return load_spec(EXAMPLE_SPEC)
