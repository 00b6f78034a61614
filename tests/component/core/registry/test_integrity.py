"""A version whose stored artifacts are damaged or changed never becomes champion, not even by force.

Real small versions (``tests.support.model_versions``) on a SQLite registry; the damage is done
to the files in the local artifact store, as a bad disk, a partial upload or a hand edit would.
"""

from __future__ import annotations

import pytest

from airflow_mlops.core.model import release
from airflow_mlops.core.registry import integrity, promotion
from airflow_mlops.core.registry.client import Registry
from tests.support.model_versions import SERVABLE, Versions, two_promoted

pytestmark = pytest.mark.component


@pytest.fixture
def store(tmp_path, spec):
    """v1 was champion, v2 is: a rollback would restore v1."""
    return two_promoted(tmp_path, spec.registered_model_name)


def _champion(store: Versions) -> str:
    return str(store.registry.champion(store.name).version)


def _other_valid_graph(onnx_bytes: bytes) -> bytes:
    """The same graph with one more metadata entry: it loads, but its bytes are not the registered ones."""
    import onnx

    graph = onnx.load_from_string(onnx_bytes)
    entry = graph.metadata_props.add()
    entry.key, entry.value = "edited", "by hand"
    return bytes(graph.SerializeToString())


def test_a_corrupt_onnx_graph_is_refused_by_rollback_even_forced_and_the_champion_stays(store):
    store.artifact_path("1", "onnx/model.onnx").write_bytes(b"not an onnx graph")
    for force in (False, True):
        with pytest.raises(promotion.RollbackError) as refused:
            promotion.rollback(store.registry, store.name, by="ops", reason="alerts", force=force)
        message = str(refused.value)
        assert (
            "v1" in message
            and "ONNX graph" in message
            and "not the" in message
            and "recorded at registration" in (message)
        )
    assert _champion(store) == "2"
    assert len(store.registry.promotion_history(store.name)) == 2


def test_a_graph_that_does_not_load_is_refused_even_without_recorded_digests(store):
    old = store.add(SERVABLE, digests=False)  # registered before digests were recorded
    store.artifact_path(old, "onnx/model.onnx").write_bytes(b"\x08\x07garbage")
    with pytest.raises(promotion.RollbackError, match=f"v{old}: ONNX Runtime cannot load its graph"):
        promotion.rollback(store.registry, store.name, by="ops", reason="alerts", to_version=old)
    assert _champion(store) == "2"


def test_a_changed_but_loadable_graph_is_refused_for_its_digest(store):
    onnx_file = store.artifact_path("1", "onnx/model.onnx")
    onnx_file.write_bytes(_other_valid_graph(onnx_file.read_bytes()))
    with pytest.raises(promotion.RollbackError, match=r"v1: its ONNX graph .* has sha256 .*not the .* recorded"):
        promotion.rollback(store.registry, store.name, by="ops", reason="alerts")
    assert _champion(store) == "2"


def test_a_changed_model_file_is_refused_for_its_digest(store):
    model_file = store.artifact_path("1", "model/model.skops")
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    with pytest.raises(promotion.RollbackError, match=r"v1: its model file model\.skops has sha256"):
        promotion.rollback(store.registry, store.name, by="ops", reason="alerts")
    assert _champion(store) == "2"


def test_a_version_without_digests_is_restored_when_it_loads_and_the_record_says_so(store):
    old = store.add(SERVABLE, digests=False)
    record = promotion.rollback(store.registry, store.name, by="ops", reason="alerts", to_version=old)
    assert _champion(store) == old
    assert "digests were not recorded" in record["integrity"] and "ONNX graph loads" in record["integrity"]


def test_promotion_refuses_a_candidate_whose_graph_was_damaged_after_registration(store):
    candidate = store.add(SERVABLE, run="churn_training/run-3")
    store.artifact_path(candidate, "onnx/model.onnx").write_bytes(b"truncated")
    gate = {"promote": True, "name": store.name, "version": candidate, "champion_version": "2", "reasons": ["ok"]}
    with pytest.raises(integrity.IntegrityError, match=f"refusing to promote '{store.name}' v{candidate}: its ONNX"):
        release.promote_candidate(store.registry, gate, by="churn_training/run-3")
    assert _champion(store) == "2"


def test_a_failed_deploy_does_not_roll_back_onto_a_corrupt_previous_champion(store, monkeypatch, tmp_path, spec):
    from airflow_mlops.core.data import synthetic
    from airflow_mlops.core.io import tables
    from airflow_mlops.serving import deploy

    rows_uri = tables.write_parquet(synthetic.churn_batch(20, seed=3), str(tmp_path / "rows.parquet"))

    def fails(*args, **kwargs):
        raise deploy.DeployError("in-process app: HTTP 500")

    monkeypatch.setattr(deploy, "smoke_test_in_process", fails)
    store.artifact_path("1", "onnx/model.onnx").write_bytes(b"not an onnx graph")
    record = store.registry.promotion_history(store.name)[-1]
    with pytest.raises(deploy.DeployError) as failed:
        deploy.deploy_or_rollback(spec, store.registry, record, rows_uri, by="churn_training/run-2")
    message = str(failed.value)
    assert "HTTP 500" in message and "rolling back to v1 was refused" in message and "v2 stays champion" in message
    assert _champion(store) == "2"


def test_an_onnx_uri_outside_the_registrys_locations_is_refused_unread(store, tmp_path, monkeypatch):
    """A tag pointing at /etc/passwd (or any file of the host) is never fetched, the champion stays."""
    secret = tmp_path / "outside" / "model.onnx"
    secret.parent.mkdir()
    secret.write_bytes(b"root:x:0:0:root:/root:/bin/bash")
    store.registry.tag_version(store.name, "1", {"onnx_uri": f"file://{secret}"})
    fetched: list[str] = []
    real = Registry.download
    monkeypatch.setattr(
        Registry, "download", lambda registry, artifact, dst: fetched.append(artifact) or real(registry, artifact, dst)
    )
    with pytest.raises(promotion.RollbackError, match="outside the registry's artifact locations"):
        promotion.rollback(store.registry, store.name, by="ops", reason="alerts", force=True)
    assert f"file://{secret}" not in fetched and _champion(store) == "2"
