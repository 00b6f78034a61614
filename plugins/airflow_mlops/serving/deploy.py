"""The deploy step: the new champion must answer real rows through the serving app, or it goes.

Before the promote task moves the alias, ``preflight`` runs step 1 below on the candidate,
so a version the serving app cannot serve never becomes champion, not even for the
seconds a running app takes to notice. After the move, ``deploy_or_rollback``:

1. loads the promoted version exactly as ``airflow-mlops serve`` does (same loader, same
   request checks, same ONNX graph) in an app inside this process and posts test-split
   rows to it: every answer must be a 200 from that version, with one prediction per
   row, and the scores must equal the registered scikit-learn model's within 1e-4;
   a malformed body must get a 422;
2. when a running app is configured (``deployment.conn_id``), waits until it reports the
   new version on ``/health/ready`` (it swaps by itself when the alias moves) and posts
   the same rows to it, with the same checks;
3. on any failure, moves the alias back to the version the promotion replaced (or, for
   a first champion, removes the alias, so nothing serves a model that failed) and
   raises ``DeployError`` saying what failed and what was done. Both are moves recorded
   in the promotion history (``core.registry.promotion``). The version moved back to must load
   and match its recorded digests (``core.registry.integrity``); when it does not, the alias
   stays where it is and the error says both what failed and why the rollback was refused.

Safe to retry: a move a killed attempt left half done is recorded first; a retry after
the rollback finds the version no longer champion and fails without touching the alias.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import numpy as np

from airflow_mlops.core.io import tables
from airflow_mlops.core.registry import promotion as moves
from airflow_mlops.core.registry import tracking
from airflow_mlops.core.registry.client import Registry
from airflow_mlops.spec import PipelineSpec

logger = logging.getLogger(__name__)

SCORE_TOLERANCE = 1e-4


class DeployError(RuntimeError):
    """The new champion failed its smoke test; the message says what was rolled back."""


def smoke_rows(spec: PipelineSpec, rows_uri: str, count: int) -> list[dict[str, Any]]:
    """Up to ``count`` real rows (features and id; no label) as JSON-ready records."""
    frame = tables.read_table(rows_uri)
    columns = [c for c in [spec.data.id_column, *spec.data.features.all] if c and c in frame.columns]
    sample = frame[columns].head(count)
    if sample.empty:
        raise DeployError(f"no rows in {rows_uri} to smoke-test with")
    return list(json.loads(sample.to_json(orient="records", date_format="iso")))


def _expected_scores(spec: PipelineSpec, registry: Registry, version: str, rows: list[dict[str, Any]]) -> np.ndarray:
    import pandas as pd

    from airflow_mlops.core.model.packaging import scores
    from airflow_mlops.core.model.training import feature_frame

    model = tracking.load_model(registry, f"models:/{spec.registered_model_name}/{version}")
    values = scores(model, feature_frame(pd.DataFrame.from_records(rows), spec), spec.model.task)
    if spec.model.task != "classification":
        return values[:, 0]
    if values.shape[1] > 2:  # every class's probability, columns in the order of the labels as text
        return values[:, np.argsort([str(c) for c in model.classes_], kind="stable")]
    return values[:, -1]


def _check_answer(status: int, body: bytes, version: str, expected: np.ndarray, where: str) -> float:
    if status != 200:
        raise DeployError(f"{where}: HTTP {status}: {body[:300]!r}")
    answer = json.loads(body)
    if str(answer.get("model_version")) != version:
        raise DeployError(f"{where}: answered with v{answer.get('model_version')}, expected v{version}")
    if "probabilities" in answer:  # more than two classes: every class's probability is checked
        got = np.asarray([[row[k] for k in sorted(row)] for row in answer["probabilities"]], dtype=np.float64)
    else:
        got = np.asarray(answer.get("scores", answer.get("predictions")), dtype=np.float64)
    if got.shape != expected.shape:
        raise DeployError(f"{where}: {got.shape[0]} predictions for {expected.shape[0]} rows")
    gap = float(np.max(np.abs(got - expected))) if len(got) else 0.0
    if not np.isfinite(got).all() or gap > SCORE_TOLERANCE * max(1.0, float(np.max(np.abs(expected)))):
        raise DeployError(f"{where}: scores differ from the registered model's by up to {gap:.3g}")
    return gap


def smoke_test_in_process(
    spec: PipelineSpec, registry: Registry, version: str, rows: list[dict[str, Any]], expected: np.ndarray
) -> dict[str, Any]:
    """Serve ``version`` in an app inside this process and query it."""
    import asyncio

    from airflow_mlops.serving.app import ServingApp
    from airflow_mlops.serving.config import ServeConfig
    from airflow_mlops.serving.inprocess import call
    from airflow_mlops.serving.model import load_version
    from airflow_mlops.serving.payload import InputSchema

    schema = InputSchema.from_spec(spec)
    config = ServeConfig(spec_path="", tracking_uri=registry.tracking_uri, require_token=False, log_predictions=False)
    app = ServingApp(
        schema, config, load=lambda v: load_version(registry, spec, schema, v), probe=lambda: version
    )  # smoke queries are not predictions: nothing is logged, so monitoring never sees them

    async def scenario() -> tuple[Any, Any]:
        await app.refresh()
        try:
            if app.model is None:
                raise DeployError(f"the serving app cannot load v{version}: {app.load_error}")
            good = await call(app, "POST", "/v1/predict", json.dumps({"instances": rows}).encode())
            bad = await call(app, "POST", "/v1/predict", json.dumps({"instances": [{"unexpected": 1}]}).encode())
            return good, bad
        finally:
            await app.shutdown()

    (status, _, body), (bad_status, _, _) = asyncio.run(scenario())
    gap = _check_answer(status, body, version, expected, "in-process app")
    if bad_status != 422:
        raise DeployError(f"in-process app: a malformed body got HTTP {bad_status}, not 422")
    return {"rows": len(rows), "max_abs_diff": gap}


def smoke_test_live(
    url: str, token: str | None, version: str, rows: list[dict[str, Any]], expected: np.ndarray, timeout: float
) -> dict[str, Any]:
    """Wait for the running app at ``url`` to serve ``version``, then query it."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.monotonic() + timeout
    seen = None
    with httpx.Client(base_url=url.rstrip("/"), timeout=10.0) as client:
        while True:
            try:
                ready = client.get("/health/ready")
                seen = ready.json().get("model_version") if ready.status_code == 200 else f"HTTP {ready.status_code}"
            except (httpx.HTTPError, ValueError) as exc:
                seen = f"unreachable ({exc})"
            if seen == version:
                break
            if time.monotonic() > deadline:
                raise DeployError(
                    f"serving app at {url} did not load v{version} within {timeout:.0f} s (it reports {seen})"
                )
            time.sleep(1.0)
        started = time.perf_counter()
        # Logged like any request (nothing a client sends can keep rows out of the log), under a
        # request id of its own: a few dozen test-split rows, no labels will ever join them.
        marks = {"X-Request-ID": f"deploy-smoke-{uuid.uuid4().hex}"}
        answer = client.post("/v1/predict", json={"instances": rows}, headers={**headers, **marks})
        latency = time.perf_counter() - started
    gap = _check_answer(answer.status_code, answer.content, version, expected, f"serving app at {url}")
    return {"url": url, "rows": len(rows), "max_abs_diff": gap, "latency_ms": round(latency * 1000, 2)}


def preflight(spec: PipelineSpec, registry: Registry, version: str, rows_uri: str) -> dict[str, Any]:
    """The in-process smoke test of ``version`` before any alias moves (run by the promote task)."""
    rows = smoke_rows(spec, rows_uri, spec.deployment.smoke_rows)
    expected = _expected_scores(spec, registry, version, rows)
    return smoke_test_in_process(spec, registry, version, rows, expected)


def deploy_or_rollback(
    spec: PipelineSpec,
    registry: Registry,
    promotion: dict[str, Any],
    rows_uri: str,
    by: str,
    live_url: str | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """Smoke-test the version ``promotion`` moved the alias to; roll the alias back if it fails."""
    name = spec.registered_model_name
    version, previous = str(promotion["to_version"]), promotion.get("from_version")
    report: dict[str, Any] = {"model": name, "version": version}
    moves.settle_pending(registry, name)
    current = registry.champion(name)
    if current is None or str(current.version) != version:
        # E.g. this task cleared after its rollback: testing v{version} now would prove nothing.
        raise DeployError(f"v{version} is no longer the champion of {name} (now {current and current.version})")
    try:
        rows = smoke_rows(spec, rows_uri, spec.deployment.smoke_rows)
        expected = _expected_scores(spec, registry, version, rows)
        report["in_process"] = smoke_test_in_process(spec, registry, version, rows, expected)
        if live_url:
            report["live"] = smoke_test_live(
                live_url, token, version, rows, expected, spec.deployment.ready_timeout_seconds
            )
    except Exception as exc:
        reason = f"deploy smoke test of v{version} failed: {exc}"
        current = registry.champion(name)
        if current is None or str(current.version) != version:
            raise DeployError(f"{reason}; the champion is now {current and current.version}, not touched") from exc
        if previous:
            # What served before this move is restored whatever its tags say (a version forced back
            # earlier stays forced), as long as its artifacts are intact: a corrupt graph serves nothing.
            try:
                moves.rollback(registry, name, by=by, reason=reason[:900], to_version=str(previous), force=True)
            except moves.RollbackError as refused:
                raise DeployError(
                    f"{reason}; rolling back to v{previous} was refused ({refused}): v{version} stays champion, "
                    "restore a sound version by hand (airflow-mlops rollback --to N)"
                ) from exc
            raise DeployError(f"{reason}; champion rolled back to v{previous}") from exc
        moves.promote(registry, name, None, reason=f"rollback: {reason[:900]}", by=by, extra={"rollback": True})
        raise DeployError(f"{reason}; it was the first champion: the champion alias was removed") from exc
    registry.tag_version(name, version, {"deploy": "passed", "deploy_report": json.dumps(report)[:4000]})
    return report
