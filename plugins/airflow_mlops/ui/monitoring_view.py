"""The monitoring part of the model page: drift and decay over the last monitoring runs, the log's volume.

Every monitoring run is an MLflow run of the ``<pipeline>_monitoring`` experiment with one
metric per score (``core.operations.stages``: ``psi_<feature>``, ``prediction_psi``,
``labeled_<metric>``, ``performance_decay``, ``labeled_rows``, ``current_rows``, the estimate
without labels ``estimated_<metric>`` / ``labeled_estimated_<metric>`` / ``estimated_decay``, and
``slice_decay``) and the decisions as the ``retrain`` and ``alerts`` tags; a search of the
newest N runs gives the whole chart.
The prediction volume per day is read from the prediction log's date partitions (row counts
from the Parquet footers, not the rows). The health incidents (silence, label lag, champion age,
a late monitoring run) are the health check's state file (``core.operations.incidents``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow_mlops import layout
from airflow_mlops.spec import PipelineSpec


def monitoring_runs(spec: PipelineSpec, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per run (oldest first): when, which version, PSI per feature, prediction drift, decay, decision."""
    from airflow_mlops.core.registry.client import metric_name  # light: names only

    features = [*spec.data.features.all]
    keys = {feature: metric_name(f"psi_{feature}") for feature in features}
    metric = spec.promotion.metric
    rows = []
    for run in sorted(runs, key=lambda r: r.get("start_time") or 0):
        m, tags = run["metrics"], run["tags"]
        retrain, alerts = tags.get("retrain", ""), tags.get("alerts", "")
        labeled = m.get("labeled_rows")
        current = m.get("current_rows")
        rows.append(
            {
                "mlflow_run_id": run["run_id"],
                "airflow_run_id": tags.get("airflow.run_id") or run.get("run_name"),
                "at": _iso(run.get("start_time")),
                "model_version": tags.get("model_version"),
                "psi": {f: m[k] for f, k in keys.items() if k in m},
                "drifted_features": m.get("drifted_features"),
                "current_rows": current,
                "prediction_psi": m.get("prediction_psi"),
                "labeled_rows": labeled,
                "labeled_metric": m.get(f"labeled_{metric}"),
                "metric_drop": m.get("labeled_metric_drop"),
                "decayed": bool(m.get("performance_decay")),
                # The estimate from the logged scores (no labels), and on the labeled rows beside the realised value.
                "estimated_metric": m.get(f"estimated_{metric}"),
                "labeled_estimated_metric": m.get(f"labeled_estimated_{metric}"),
                "estimated_decay": bool(m.get("estimated_decay")),
                "slice_decay": bool(m.get("slice_decay")),
                "decayed_slices": m.get("decayed_slices"),
                "alerts": [] if alerts in ("", "no") else alerts.split(","),
                "drifted": "drift" in retrain.split(","),
                "retrain": [] if retrain in ("", "no") else retrain.split(","),
            }
        )
    latest = rows[-1] if rows else None
    return {
        "features": features,
        "psi_threshold": spec.monitoring.psi_threshold,
        "metric": metric,
        "runs": rows,
        "latest": latest,
        "label_coverage": _coverage(latest),
    }


def _coverage(latest: dict[str, Any] | None) -> dict[str, Any] | None:
    """Labeled rows of the latest monitoring run against the predictions it read."""
    if latest is None:
        return None
    labeled, current = latest.get("labeled_rows"), latest.get("current_rows")
    share = labeled / current if labeled is not None and current else None
    return {"labeled_rows": labeled, "predicted_rows": current, "share": share}


def _iso(millis: Any) -> str | None:
    if not millis:
        return None
    return dt.datetime.fromtimestamp(int(millis) / 1000, dt.UTC).isoformat(timespec="seconds")


def open_alert(runs: dict[str, Any], moves: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The latest monitoring run's alarm, when it asked for a retraining and no move came after it."""
    latest = runs.get("latest")
    if not latest or not latest["retrain"]:
        return None
    after = [m for m in moves if (m.get("at") or "") > (latest["at"] or "")]
    if after:
        return None
    return {"reasons": latest["retrain"], "at": latest["at"], "airflow_run_id": latest["airflow_run_id"]}


def prediction_volume(pipeline: str, days: int = 14, today: dt.date | None = None) -> list[dict[str, Any]]:
    """Rows logged per day for the last ``days`` days (UTC), from the log's date partitions."""
    import pyarrow.parquet as pq

    from airflow_mlops.core.io import storage

    today = today or dt.datetime.now(dt.UTC).date()
    out = []
    for back in range(days - 1, -1, -1):
        day = today - dt.timedelta(days=back)
        files = storage.list_files_recursive(layout.prediction_log_partition(pipeline, day), (".parquet",))
        rows = 0
        for uri in files:
            with storage.local_copy(uri) as path:
                rows += pq.ParquetFile(path).metadata.num_rows
        out.append({"day": day.isoformat(), "rows": rows, "files": len(files)})
    return out


def incidents(pipeline: str, closed: int = 5) -> dict[str, Any]:
    """The open health incidents (what, since when, opened by which run) and the newest closed ones."""
    from airflow_mlops.core.operations import incidents as store

    state = store.load(pipeline)
    keys = ("id", "check", "summary", "since", "opened_at", "opened_by", "closed_at", "closed_by")
    shown = [{k: i.get(k) for k in keys} for i in state["closed"][-closed:]] if closed else []
    return {
        "open": sorted(({k: i.get(k) for k in keys} for i in state["open"].values()), key=lambda i: i["opened_at"]),
        "closed": shown,
        "unsent": len(state["outbox"]),
    }
