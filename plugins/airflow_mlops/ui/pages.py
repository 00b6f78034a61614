"""The model page's answers: the overview of all pipelines and one pipeline's page, as JSON.

Built from three readers: MLflow (``ui.mlflow_reader``, cached), Airflow's own state
(``ui.airflow_state``) and the artifact store (``ui.quality_view``, ``ui.monitoring_view``).
A part that cannot be read (MLflow down, a store error) is answered as ``{"error": ...}``
(redacted) and the rest of the page still renders.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from airflow_mlops.spec import PipelineSpec
from airflow_mlops.ui import monitoring_view, quality_view, registry_view
from airflow_mlops.ui.airflow_state import AirflowState
from airflow_mlops.ui.mlflow_reader import MlflowReader
from airflow_mlops.ui.summaries import dag_ids


def _guarded(compute: Any) -> Any:
    from airflow_mlops.core.redaction import describe_error

    try:
        return compute()
    except Exception as exc:  # one unreadable part must not take the page down
        return {"error": describe_error(exc)}


def _summary(
    spec: PipelineSpec,
    reader: MlflowReader | None,
    runs: dict[str, dict[str, Any]],
    approvals: list[dict[str, Any]],
    monitoring_limit: int,
) -> dict[str, Any]:
    """One pipeline's row of the overview."""
    dags = dag_ids(spec)
    entry: dict[str, Any] = {
        "name": spec.name,
        "model": spec.registered_model_name,
        "dags": dags,
        "runs": {kind: runs.get(dag) for kind, dag in dags.items()},
        "approvals_open": sum(1 for a in approvals if a["dag_id"] in dags.values()),
        "incidents": _guarded(lambda: monitoring_view.incidents(spec.name, closed=0)),
    }
    if reader is None:
        entry["registry"] = {"error": "MLFLOW_TRACKING_URI is not set for the api-server"}
        return entry

    def registry_part() -> dict[str, Any]:
        model = reader.registered_model(spec.registered_model_name)
        alias = model["aliases"].get(registry_view.CHAMPION_ALIAS) if model else None
        current = reader.alias_version(spec.registered_model_name, registry_view.CHAMPION_ALIAS) if alias else None
        versions = [current] if current else []  # the overview needs the champion's tags only
        monitoring = monitoring_view.monitoring_runs(
            spec, reader.recent_runs(f"{spec.name}_monitoring", monitoring_limit)
        )
        latest = monitoring["latest"]
        return {
            "champion": registry_view.champion(spec, model, versions),
            "drift": None if latest is None else {"drifted": latest["drifted"], "features": latest["drifted_features"],
                                                   "at": latest["at"], "prediction_psi": latest["prediction_psi"]},
            "decay": None if latest is None else {"decayed": latest["decayed"], "metric": monitoring["metric"],
                                                   "labeled": latest["labeled_metric"], "drop": latest["metric_drop"]},
            "alert": monitoring_view.open_alert(monitoring, registry_view.history(model)),
        }  # fmt: skip

    entry["registry"] = _guarded(registry_part)
    return entry


def overview(
    specs: list[PipelineSpec], reader: MlflowReader | None, state: AirflowState, monitoring_limit: int = 1
) -> list[dict[str, Any]]:
    """Every pipeline: champion, since when, metric vs threshold, last runs, drift, decay, approvals, alerts
    (the drift/decay alarm and the open health incidents).

    Pipelines are read concurrently (each is a few MLflow requests, cached for the reader's TTL).
    """
    all_dags = [dag for spec in specs for dag in dag_ids(spec).values()]
    runs = _guarded(lambda: state.latest_runs(all_dags))
    approvals = _guarded(lambda: state.pending_approvals(all_dags))
    airflow_error = runs.get("error") or (approvals.get("error") if isinstance(approvals, dict) else None)
    runs = runs if "error" not in runs else {}
    approvals = approvals if isinstance(approvals, list) else []
    with ThreadPoolExecutor(max_workers=min(8, max(1, len(specs)))) as pool:
        rows = list(pool.map(lambda s: _summary(s, reader, runs, approvals, monitoring_limit), specs))
    if airflow_error:  # the runs and approvals columns are empty: say why instead
        for row in rows:
            row["airflow_error"] = airflow_error
    return rows


def pipeline_page(
    spec: PipelineSpec,
    reader: MlflowReader | None,
    state: AirflowState,
    monitoring_limit: int = 200,
    validation_runs: int = 10,
    volume_days: int = 14,
) -> dict[str, Any]:
    """Everything the pipeline's tab shows: summary, timeline, champion card, monitoring, data quality, approvals.

    The parts are read concurrently (MLflow, Airflow's database and the store answer in parallel).
    """
    dags = dag_ids(spec)
    with ThreadPoolExecutor(max_workers=10) as pool:
        runs_f = pool.submit(_guarded, lambda: state.latest_runs(list(dags.values())))
        approvals_f = pool.submit(_guarded, lambda: state.pending_approvals(list(dags.values())))
        quality_f = pool.submit(
            _guarded,
            lambda: {
                "validations": quality_view.validation_results(
                    spec.name, state.recent_run_ids(dags["training"], validation_runs)
                ),
                "quarantined": quality_view.quarantined(spec.name),
            },
        )
        volume_f = pool.submit(_guarded, lambda: monitoring_view.prediction_volume(spec.name, volume_days))
        incidents_f = pool.submit(_guarded, lambda: monitoring_view.incidents(spec.name))
        registry_f = pool.submit(_guarded, lambda: _registry_part(spec, reader, pool))
        monitoring_f = pool.submit(
            _guarded,
            lambda: monitoring_view.monitoring_runs(
                spec, _need(reader).recent_runs(f"{spec.name}_monitoring", monitoring_limit)
            ),
        )
        runs = runs_f.result()
        page: dict[str, Any] = {
            "name": spec.name,
            "model": spec.registered_model_name,
            "dags": dags,
            "runs": runs if "error" in runs else {kind: runs.get(dag) for kind, dag in dags.items()},
            "approvals": approvals_f.result(),
            "features": spec.data.features.all,
            "quality": quality_f.result(),
            "volume": volume_f.result(),
            "incidents": incidents_f.result(),
            "registry": registry_f.result(),
            "monitoring": monitoring_f.result(),
        }
    if reader is not None and "timeline" in page["registry"]:
        moves = [dict(m) for m in reversed(page["registry"]["timeline"]["moves"])]
        page["alert"] = monitoring_view.open_alert(page["monitoring"], moves)
    return page


def _need(reader: MlflowReader | None) -> MlflowReader:
    if reader is None:
        raise LookupError("MLFLOW_TRACKING_URI is not set for the api-server")
    return reader


def _registry_part(spec: PipelineSpec, maybe_reader: MlflowReader | None, pool: ThreadPoolExecutor) -> dict[str, Any]:
    """Champion, timeline, links and the champion's card (its run, plots, slices, importance read in parallel)."""
    reader = _need(maybe_reader)
    name = spec.registered_model_name
    model = reader.registered_model(name)
    versions = reader.versions(name) if model else []
    current = registry_view.champion(spec, model, versions)
    part: dict[str, Any] = {
        "champion": current,
        "timeline": registry_view.timeline(spec, model, versions),
        "links": {
            "model": f"{reader.ui_base}/#/models/{name}",
            "versions": {v["version"]: reader.version_url(name, v["version"]) for v in versions},
        },
    }
    version = next((v for v in versions if current and v["version"] == current["version"]), None)
    if version is None or not version["run_id"]:
        return part
    run_id = version["run_id"]
    run_f = pool.submit(reader.run, run_id)
    artifacts_f = pool.submit(reader.artifact_names, run_id, "evaluation")
    slices_f = pool.submit(reader.json_artifact, run_id, "evaluation/slices.json")
    importance_f = pool.submit(reader.json_artifact, run_id, "evaluation/feature_importance.json")
    run = run_f.result()
    part["card"] = registry_view.card(
        spec, version, run, artifacts_f.result(), slices_f.result(), importance_f.result()
    )
    part["card"]["run_url"] = reader.run_url((run or {}).get("experiment_id"), run_id)
    part["card"]["version_url"] = reader.version_url(name, version["version"])
    return part
