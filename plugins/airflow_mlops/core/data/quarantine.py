"""Quarantine: inputs that failed ingestion or validation are set aside with their report.

Files the pipeline owns (its lake) are moved, so later runs no longer read them; files
from an external source are copied and left where they are. Nothing is ever deleted.
Layout: ``<artifact_root>/<pipeline>/quarantine/<run_id>/<file>`` plus ``<file>.report.json``.
"""

from __future__ import annotations

from typing import Any

from airflow_mlops import layout
from airflow_mlops.core.io import storage


def quarantine_dir(pipeline: str, run_id: str) -> str:
    return layout.join(layout.artifact_root(), pipeline, "quarantine", layout.safe_segment(run_id))


def quarantine_file(pipeline: str, uri: str, run_id: str, report: dict[str, Any]) -> str:
    """Set ``uri`` aside with ``report``; return where it now is.

    Files of different folders with the same name get distinct names (a short hash of the
    source URI), and a file already set aside by this run (a retried task) stays as it is.
    """
    import hashlib

    name = uri.rstrip("/").rsplit("/", 1)[-1]
    if not uri.startswith(layout.lake_dir(pipeline, "")):
        name = f"{hashlib.sha256(uri.encode()).hexdigest()[:8]}-{name}"
    target = layout.join(quarantine_dir(pipeline, run_id), name)
    if storage.exists(target):
        return target
    if uri.startswith(layout.lake_dir(pipeline, "")):
        storage.move(uri, target)
    else:
        storage.write_bytes(storage.read_bytes(uri), target)
    storage.write_json({"input": uri, **report}, f"{target}.report.json")
    return target
