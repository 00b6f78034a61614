"""The registry part of the model page: champion, timeline of moves and versions, the champion's card.

Pure functions of what ``ui.mlflow_reader.MlflowReader`` answers (plain dicts), so they are
tested without a server and cost nothing but the reads. What each version holds comes from
the tags the training DAG writes (``core.model.release``: ``test_<metric>``, ``gate``,
``gate_reasons``, ``onnx_parity``, fingerprints, ``promotion``; ``approval`` when a person
answered) and the promotion history on the registered model (``core.registry.promotion``).
"""

from __future__ import annotations

import json
from typing import Any

from airflow_mlops.spec import PipelineSpec

HISTORY_TAG = "promotion_history"  # as core.registry.client names it
CHAMPION_ALIAS = "champion"
PENDING_TAG = "promotion_pending"  # as core.registry.promotion names it
CARD_PLOTS = ("roc_curve.png", "pr_curve.png", "confusion_matrix.png", "residuals.png", "feature_importance.png")


def _json_tag(tags: dict[str, str], key: str) -> Any:
    raw = tags.get(key)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def version_metrics(tags: dict[str, str]) -> dict[str, float]:
    """The test-split metrics a version was registered with (``test_<metric>`` tags)."""
    out = {}
    for key, value in tags.items():
        if key.startswith("test_") and key not in ("test_fingerprint", "test_uri"):
            number = _float(value)
            if number is not None:
                out[key[len("test_") :]] = number
    return out


def history(model: dict[str, Any] | None) -> list[dict[str, Any]]:
    if model is None:
        return []
    value = _json_tag(model["tags"], HISTORY_TAG)
    return list(value) if isinstance(value, list) else []


def move_kind(record: dict[str, Any]) -> str:
    """``promotion``, ``rollback`` or ``manual`` (an alias moved outside airflow-mlops), as people read it."""
    if record.get("manual"):
        return "manual"
    return "rollback" if record.get("rollback") else "promotion"


def timeline(spec: PipelineSpec, model: dict[str, Any] | None, versions: list[dict[str, Any]]) -> dict[str, Any]:
    """Every move of the champion (newest first) and every version with its metrics and verdicts.

    A version is ``promoted`` when a move went to it; a version that was not has its gate
    verdict and reasons (or the person who rejected it) beside it.
    """
    moves = history(model)
    promoted = {str(r.get("to_version")) for r in moves if r.get("to_version")}
    rows = []
    for v in sorted(versions, key=lambda v: int(v["version"])):
        tags = v["tags"]
        rows.append(
            {
                "version": v["version"],
                "created": v["created"],
                "run_id": v["run_id"],
                "airflow_run_id": tags.get("airflow.run_id"),
                "metrics": version_metrics(tags),
                "gate": tags.get("gate"),
                "gate_reasons": tags.get("gate_reasons", ""),
                "gate_verdict": _json_tag(tags, "gate_verdict"),
                "approval": _json_tag(tags, "approval"),
                "onnx_parity": tags.get("onnx_parity"),
                "promoted": v["version"] in promoted,
                "servable": not unservable(tags),
            }
        )
    return {
        "metric": spec.promotion.metric,
        "higher_is_better": spec.promotion.higher_is_better,
        "threshold": spec.promotion.thresholds.get(spec.promotion.metric),
        "moves": [
            {**r, "kind": move_kind(r), "from_version": r.get("from_version"), "to_version": r.get("to_version")}
            for r in reversed(moves)
        ],
        "versions": rows,
    }


def unservable(tags: dict[str, str]) -> list[str]:
    """Why a version may not become champion by rollback (as ``core.registry.promotion`` refuses it)."""
    reasons = []
    if tags.get("gate") != "passed":
        reasons.append(
            f"gate {tags.get('gate') or 'never ran'}"
            + (f": {tags['gate_reasons']}" if tags.get("gate_reasons") else "")
        )
    if not tags.get("onnx_uri"):
        reasons.append("no parity-checked ONNX graph")
    return reasons


def champion(spec: PipelineSpec, model: dict[str, Any] | None, versions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The serving version, since when, its test metric against the threshold; None without a champion.

    ``alias_mismatch`` is set when the alias points elsewhere than the last recorded move
    (someone moved it by hand in MLflow): the page shows it instead of trusting the history.
    """
    if model is None or CHAMPION_ALIAS not in model["aliases"]:
        return None
    version = model["aliases"][CHAMPION_ALIAS]
    moves = history(model)
    last = next((r for r in reversed(moves) if str(r.get("to_version")) == version), None)
    newest = moves[-1] if moves else None
    tags: dict[str, str] = next((v["tags"] for v in versions if v["version"] == version), {})
    metric = spec.promotion.metric
    value = version_metrics(tags).get(metric)
    threshold = spec.promotion.thresholds.get(metric)
    meets = None
    if value is not None and threshold is not None:
        meets = value >= threshold if spec.promotion.higher_is_better else value <= threshold
    mismatch = None
    pending = _json_tag(model["tags"], PENDING_TAG)  # a move a task is making (or left half done)
    moving_here = isinstance(pending, dict) and str(pending.get("to_version")) == version
    if newest is not None and str(newest.get("to_version")) != version and not moving_here:
        mismatch = {
            "alias_version": version,
            "history_version": str(newest.get("to_version")),
            "detail": f"the alias points at v{version} but the last recorded move went to "
            f"v{newest.get('to_version')}: it was moved outside airflow-mlops (e.g. in MLflow's UI)",
        }
    return {
        "version": version,
        "since": (last or {}).get("at"),
        "by": (last or {}).get("by"),
        "why": (last or {}).get("reason"),
        "metric": metric,
        "value": value,
        "threshold": threshold,
        "meets_threshold": meets,
        "alias_mismatch": mismatch,
    }


def card(
    spec: PipelineSpec,
    version: dict[str, Any],
    run: dict[str, Any] | None,
    artifacts: list[str],
    slices: Any,
    importance: Any,
) -> dict[str, Any]:
    """What a reader of the champion needs on one screen: estimator, params, features, data, parity, plots."""
    tags = version["tags"]
    logged = dict((run or {}).get("params", {}))
    params = {k[len("param.") :]: v for k, v in logged.items() if k.startswith("param.")}
    return {
        "version": version["version"],
        "run_id": version["run_id"],
        "estimator": logged.get("estimator"),
        "params": params,
        "winner_trial": tags.get("winner_trial"),
        "features": {
            "numeric": list(spec.data.features.numeric),
            "categorical": list(spec.data.features.categorical),
            "derived": dict(spec.data.features.derived),
        },
        "label": spec.data.label,
        "data": {
            key: tags.get(key)
            for key in (
                "data_fingerprint",
                "train_fingerprint",
                "test_fingerprint",
                "spec_fingerprint",
                "duplicates_dropped",
                "batches_skipped_schema",
                "code_version",
            )
        },
        "rows": {k[: -len("_rows")]: v for k, v in logged.items() if k.endswith("_rows")},
        "metrics": version_metrics(tags),
        "onnx": {"parity": tags.get("onnx_parity"), "max_abs_diff": tags.get("onnx_max_abs_diff")},
        "plots": [name for name in CARD_PLOTS if f"evaluation/{name}" in artifacts or name in artifacts],
        "slices": slices if isinstance(slices, dict) else {},
        "importance": importance if isinstance(importance, (dict, list)) else {},
        "description": version.get("description", ""),
    }
