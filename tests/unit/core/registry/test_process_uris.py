"""A Registry never leaves MLflow's process-wide URIs set."""

from __future__ import annotations

import os
import pickle

import pytest

from airflow_mlops.core.registry.client import Registry

pytestmark = pytest.mark.unit


def test_the_process_uris_are_this_registrys_inside_the_block_and_restored_after(monkeypatch):
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    # No URI set through mlflow.set_tracking_uri by an earlier test of this process: the variable rules.
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///outer.db")
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    before = mlflow.get_tracking_uri()
    with Registry("sqlite:///inner.db").process_uris():
        assert mlflow.get_tracking_uri() == "sqlite:///inner.db" == mlflow.get_registry_uri()
    assert mlflow.get_tracking_uri() == before == "sqlite:///outer.db"
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///outer.db" and "MLFLOW_REGISTRY_URI" not in os.environ


def test_the_process_uris_are_restored_when_the_block_raises(monkeypatch):
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before = tracking_utils._tracking_uri
    with pytest.raises(RuntimeError), Registry("sqlite:///inner.db").process_uris():
        raise RuntimeError("boom")
    assert tracking_utils._tracking_uri == before and "MLFLOW_TRACKING_URI" not in os.environ
    assert mlflow.get_tracking_uri() != "sqlite:///inner.db"


def test_a_copy_of_a_registry_holds_its_uris_only(tmp_path):
    registry = Registry(f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db")
    registry.client  # noqa: B018  (made, then left out of the copy)
    copied = pickle.loads(pickle.dumps(registry))
    assert (copied.tracking_uri, copied.registry_uri) == (f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db")
    assert "client" not in vars(copied) and repr(copied) == f"Registry('sqlite:///{tmp_path}/a.db')"
