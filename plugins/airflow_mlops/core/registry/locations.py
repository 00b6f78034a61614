"""Where a model version's artifacts may be fetched from: the registry's own locations only.

A version's ``onnx_uri`` tag is text anyone with write access to the registry can set; fetched
as given, ``file:///etc/passwd`` would be read. The serving app (``serving.model``) and the
integrity check before a promotion or rollback (``core.registry.integrity``) both ask ``refusal`` first.
Standard library only.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit


def _local(uri: str) -> str:
    """``file:///a/b`` and ``/a/b`` as one form, so that a prefix test compares like with like."""
    return uri[len("file://") :] if uri.startswith("file://") else uri


def _under(uri: str, root: str | None) -> bool:
    if not root:
        return False
    uri, root = _local(uri), _local(root).rstrip("/")
    return uri.startswith(root + "/")


def refusal(
    onnx_uri: str, run_id: str, run_artifacts: Callable[[], str | None], artifact_root: str, tracking_uri: str
) -> str | None:
    """Why ``onnx_uri`` may not be fetched, or None when it is one of the registry's own locations.

    Allowed: ``runs:/<the version's run>/...``; ``mlflow-artifacts:/...`` (the tracking server's
    proxied store, on no other host); a URI under the run's artifact location
    (``run_artifacts()``, asked only when needed) or under the configured artifact root. No
    ``..`` segment and no NUL anywhere.
    """
    parts = urlsplit(onnx_uri)
    if ".." in onnx_uri.replace("\\", "/").split("/") or "\x00" in onnx_uri:
        allowed = False
    elif parts.scheme == "runs":
        allowed = bool(run_id) and onnx_uri.startswith(f"runs:/{run_id}/")
    elif parts.scheme == "mlflow-artifacts":
        allowed = not parts.netloc or parts.netloc == urlsplit(tracking_uri).netloc.rpartition("@")[2]
    else:
        allowed = _under(onnx_uri, artifact_root) or _under(onnx_uri, run_artifacts())
    if allowed:
        return None
    return (
        f"its onnx_uri {onnx_uri!r} is outside the registry's artifact locations (runs:/{run_id}/..., "
        f"mlflow-artifacts:/..., the run's artifact location, the artifact root {artifact_root}): not fetched"
    )
