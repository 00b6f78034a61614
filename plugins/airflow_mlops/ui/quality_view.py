"""The data-quality part of the model page: validation results per training run, quarantined batches.

The validate task writes ``<artifact_root>/<pipeline>/runs/<run>/validate/report.json`` pass or
fail (with the Great Expectations Data Docs site beside it when the suite failed), and
quarantine sets a batch aside as ``<artifact_root>/<pipeline>/quarantine/<run>/<file>`` with
``<file>.report.json`` (``core.data.quarantine``). This module reads those files and names
the ones the page may serve (``servable_path``): nothing outside the pipeline's validation
and quarantine folders leaves the store through the page.
"""

from __future__ import annotations

from typing import Any

from airflow_mlops import layout

REPORT_SUFFIX = ".report.json"


def pipeline_root(pipeline: str) -> str:
    return layout.join(layout.artifact_root(), pipeline)


def servable_path(relative: str) -> bool:
    """Whether ``relative`` (below the pipeline's artifact folder) is a report the page may serve."""
    return layout.is_report_path(relative)


def _failures(report: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for item in report.get("failures") or []:
        if isinstance(item, dict):
            out.append(
                {
                    "expectation": item.get("expectation"),
                    "column": item.get("column"),
                    "expected": item.get("expected"),
                    "observed": item.get("observed"),
                    "severity": item.get("severity"),
                }
            )
    return out


def validation_results(pipeline: str, run_ids: list[str]) -> list[dict[str, Any]]:
    """The validate task's report of each training run given (newest first); runs without one are left out."""
    from airflow_mlops.core.io import storage

    out = []
    for run_id in run_ids:
        folder = layout.run_dir(pipeline, run_id, "validate")
        uri = layout.join(folder, "report.json")
        if not storage.exists(uri):
            continue
        try:
            report = storage.read_json(uri)
        except ValueError:
            out.append({"run_id": run_id, "success": False, "error": f"unreadable report {uri}"})
            continue
        docs = report.get("data_docs")
        out.append(
            {
                "run_id": run_id,
                "success": bool(report.get("success", not report.get("quarantined"))),
                "evaluated": report.get("evaluated"),
                "failures": _failures(report),
                "warnings": len(report.get("warnings") or []),
                "quarantined": report.get("quarantined") or [],
                "report": _relative(pipeline, uri),
                "data_docs": _relative(pipeline, docs) if docs else None,
                "location": uri,
            }
        )
    return out


def quarantined(pipeline: str, limit: int = 50) -> list[dict[str, Any]]:
    """Batches set aside, newest run first: where the file is, why, and its report."""
    from airflow_mlops.core.io import storage

    folder = layout.join(pipeline_root(pipeline), "quarantine")
    reports = storage.list_files_recursive(folder, (REPORT_SUFFIX,))
    out = []
    for uri in sorted(reports, reverse=True)[:limit]:
        try:
            report = storage.read_json(uri)
        except ValueError:
            report = {}
        location = uri[: -len(REPORT_SUFFIX)]
        run_segment = location[len(folder) + 1 :].split("/", 1)[0]
        docs = report.get("data_docs")
        out.append(
            {
                "run": run_segment,
                "file": location.rsplit("/", 1)[-1],
                "location": location,
                "input": report.get("input"),
                "reasons": _reasons(report),
                "report": _relative(pipeline, uri),
                "data_docs": _relative(pipeline, docs) if docs else None,
            }
        )
    return out


def _reasons(report: dict[str, Any]) -> list[str]:
    out = [str(r) for r in report.get("batch_checks") or []]
    out.extend(
        f"{f['expectation']} on {f['column']}" if f.get("column") else str(f["expectation"]) for f in _failures(report)
    )
    if not out and report.get("error"):
        out.append(str(report["error"]))
    return out


def _relative(pipeline: str, uri: str) -> str | None:
    """``uri`` below the pipeline's artifact folder, when the page may serve it; else None."""
    root = pipeline_root(pipeline) + "/"
    if not uri.startswith(root):
        return None
    relative = uri[len(root) :]
    return relative if servable_path(relative) else None
