"""Does a model version's stored artifacts still load, and are they the bytes that were registered?

At registration ``register_candidate`` records the sha256 of the skops model file
(``model_sha256``) and of the ONNX graph the serving app loads (``onnx_sha256``) as version
tags. Before the ``champion`` alias moves onto a version (a promotion, a rollback, a deploy's
automatic rollback), ``verify_version`` downloads both again, compares the digests, loads
the ONNX graph in ONNX Runtime the way the serving app does (``core.model.features``) and
the skops file under the trust policy the way scoring does (``tracking.load_skops_file``).
A version registered before digests were recorded is checked by loading alone, and the
result says so. The check cannot be forced: a graph that does not load serves nothing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

import yaml

from airflow_mlops.core.registry.client import Registry
from airflow_mlops.core.registry.tracking import UntrustedModelError, load_skops_file

MODEL_DIGEST_TAG = "model_sha256"
ONNX_DIGEST_TAG = "onnx_sha256"


class IntegrityError(RuntimeError):
    """A version's artifacts are missing, do not load, or differ from what was registered."""


@dataclass
class Verification:
    """What ``verify_version`` checked: the problems (refuse when any) and what was fine."""

    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return "; ".join(self.checked)


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def skops_file(model_dir: str) -> str:
    """The skops file of a downloaded MLflow sklearn model (its ``MLmodel`` names it)."""
    with open(os.path.join(model_dir, "MLmodel"), encoding="utf-8") as handle:
        flavor = (yaml.safe_load(handle) or {}).get("flavors", {}).get("sklearn") or {}
    if flavor.get("serialization_format") != "skops" or not flavor.get("pickled_model"):
        raise UntrustedModelError("not a skops-serialized scikit-learn model")
    return os.path.join(model_dir, str(flavor["pickled_model"]))


def _onnx_file(path: str) -> str:
    return path if os.path.isfile(path) else os.path.join(path, "model.onnx")


def artifact_digests(registry: Registry, model_uri: str, onnx_uri: str | None) -> dict[str, str]:
    """The version tags that pin a candidate's artifacts: sha256 of its skops file and ONNX graph."""
    with tempfile.TemporaryDirectory(prefix="airflow-mlops-digest-") as tmp:
        tags = {MODEL_DIGEST_TAG: sha256_file(skops_file(registry.download(model_uri, f"{tmp}/model")))}
        if onnx_uri:
            tags[ONNX_DIGEST_TAG] = sha256_file(_onnx_file(registry.download(onnx_uri, f"{tmp}/onnx")))
    return tags


def _check_model(registry: Registry, version: Any, tmp: str, result: Verification) -> None:
    tags = dict(version.tags or {})
    uri = f"models:/{version.name}/{version.version}"
    try:
        path = skops_file(registry.download(uri, f"{tmp}/model"))
    except Exception as exc:  # a missing or unreadable artifact: say what, whatever raised it
        result.problems.append(f"its model artifact cannot be read ({type(exc).__name__}: {str(exc)[:300]})")
        return
    expected, got = tags.get(MODEL_DIGEST_TAG), sha256_file(path)
    if expected and expected != got:
        result.problems.append(
            f"its model file {os.path.basename(path)} has sha256 {got[:12]}..., not the {expected[:12]}... "
            "recorded at registration (changed in the artifact store)"
        )
        return
    try:
        load_skops_file(path, uri)
    except Exception as exc:  # skops and the trust policy raise several types
        result.problems.append(f"its model file does not load ({type(exc).__name__}: {str(exc)[:300]})")
        return
    result.checked.append("model file " + ("matches its sha256" if expected else "loads (no sha256 recorded)"))


def _check_onnx(registry: Registry, version: Any, tmp: str, result: Verification) -> None:
    from airflow_mlops.core.model.features import graph_input_names, onnx_session

    tags = dict(version.tags or {})
    onnx_uri = tags.get("onnx_uri")
    if not onnx_uri:
        return  # no graph to check: ``promotion.unservable_reasons`` says so (and can be forced past)
    from airflow_mlops import layout
    from airflow_mlops.core.registry import locations as artifact_locations

    run_id = str(getattr(version, "run_id", "") or "")
    refused = artifact_locations.refusal(
        onnx_uri, run_id, lambda: registry.client.get_run(run_id).info.artifact_uri if run_id else None,
        layout.artifact_root(), registry.tracking_uri,
    )  # fmt: skip
    if refused is not None:
        result.problems.append(refused)
        return
    try:
        path = _onnx_file(registry.download(onnx_uri, f"{tmp}/onnx"))
        with open(path, "rb") as handle:
            onnx_bytes = handle.read()
    except Exception as exc:
        result.problems.append(f"its ONNX graph {onnx_uri} cannot be read ({type(exc).__name__}: {str(exc)[:300]})")
        return
    expected, got = tags.get(ONNX_DIGEST_TAG), hashlib.sha256(onnx_bytes).hexdigest()
    if expected and expected != got:
        result.problems.append(
            f"its ONNX graph {onnx_uri} has sha256 {got[:12]}..., not the {expected[:12]}... recorded at "
            "registration (changed in the artifact store)"
        )
        return
    try:
        session = onnx_session(onnx_bytes, threads=1)
        graph_input_names(session.get_modelmeta().custom_metadata_map, [i.name for i in session.get_inputs()])
    except Exception as exc:  # onnxruntime raises its own exception types
        result.problems.append(
            f"ONNX Runtime cannot load its graph {onnx_uri} ({type(exc).__name__}: {str(exc)[:300]})"
        )
        return
    result.checked.append(
        "ONNX graph " + ("matches its sha256 and loads" if expected else "loads (no sha256 recorded)")
    )


def verify_version(registry: Registry, version: Any) -> Verification:
    """Check ``version`` (an MLflow ModelVersion) before it becomes champion; see the module docstring."""
    result = Verification()
    with tempfile.TemporaryDirectory(prefix="airflow-mlops-verify-") as tmp:
        _check_model(registry, version, tmp, result)
        _check_onnx(registry, version, tmp, result)
    tags = dict(version.tags or {})
    if not result.problems and MODEL_DIGEST_TAG not in tags:
        result.checked.append("digests were not recorded at its registration: checked by loading only")
    return result


def require_intact(registry: Registry, version: Any, action: str) -> Verification:
    """``verify_version``, raising ``IntegrityError`` naming the version and what is wrong."""
    result = verify_version(registry, version)
    if result.problems:
        raise IntegrityError(
            f"refusing to {action} '{version.name}' v{version.version}: {'; '.join(result.problems)}. "
            "Nothing moved; this check cannot be forced"
        )
    return result
