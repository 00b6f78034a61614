"""The ``/metrics`` page: the serving app's counters in Prometheus' text format (version 0.0.4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mlops.serving.connections import closed as closed_connections

if TYPE_CHECKING:
    from airflow_mlops.serving.app import ServingApp

CONTENT_TYPE = b"text/plain; version=0.0.4"


def metrics_text(app: ServingApp) -> bytes:
    """Responses by status, rows answered, swaps, model runs, load and poll failures, connections
    closed by a limit, the model served and the prediction log's rows."""
    lines = ["# TYPE airflow_mlops_serving_responses_total counter"]
    lines += [f'airflow_mlops_serving_responses_total{{status="{s}"}} {n}' for s, n in sorted(app.responses.items())]
    lines += [
        "# TYPE airflow_mlops_serving_predictions_total counter",
        f"airflow_mlops_serving_predictions_total {app.predictions}",
        "# TYPE airflow_mlops_serving_model_swaps_total counter",
        f"airflow_mlops_serving_model_swaps_total {app.swaps}",
        "# TYPE airflow_mlops_serving_model_runs_total counter",
        f"airflow_mlops_serving_model_runs_total {app.batches}",
        "# TYPE airflow_mlops_serving_model_load_failures_total counter",
        f"airflow_mlops_serving_model_load_failures_total {app.load_failures}",
        "# TYPE airflow_mlops_serving_registry_poll_failures_total counter",
        f"airflow_mlops_serving_registry_poll_failures_total {app.poll_failures}",
        "# TYPE airflow_mlops_serving_connections_closed_total counter",
        *(f'airflow_mlops_serving_connections_closed_total{{limit="{k}"}} {n}'
          for k, n in sorted(closed_connections.items())),
    ]  # fmt: skip
    if app.model is not None:
        lines += [
            "# TYPE airflow_mlops_serving_model_info gauge",
            f'airflow_mlops_serving_model_info{{model_name="{app.model.name}",model_version="{app.model.version}"}} 1',
        ]
    log = app.prediction_logger
    if log is not None:
        lines += [
            "# TYPE airflow_mlops_prediction_log_rows_written_total counter",
            f"airflow_mlops_prediction_log_rows_written_total {log.written_rows}",
            "# TYPE airflow_mlops_prediction_log_rows_pending gauge",
            f"airflow_mlops_prediction_log_rows_pending {log.pending_rows}",
            "# TYPE airflow_mlops_prediction_log_rows_dropped_total counter",
            f"airflow_mlops_prediction_log_rows_dropped_total {log.dropped_rows}",
        ]
    if app.rollout is not None:
        lines += app.rollout.metrics_lines()
    return ("\n".join(lines) + "\n").encode()
