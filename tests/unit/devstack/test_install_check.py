"""A second copy of the package metadata on sys.path makes Airflow register the plugin twice (a
"Plugin import error" on the UI's first screen); one copy registers it once. The check finds it."""

from __future__ import annotations

import json
import site
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_mlops.devstack import install_check
from tests.conftest import REPO

pytestmark = pytest.mark.unit

ENTRY_POINTS = "[airflow.plugins]\nairflow_mlops = airflow_mlops.ui.plugin:AirflowMlopsPlugin\n"


def _leftover(folder: Path) -> Path:
    """What `pip install -e .` leaves beside the package: an egg-info with the same entry points."""
    egg = folder / "airflow_mlops.egg-info"
    egg.mkdir(parents=True)
    (egg / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: airflow-mlops\nVersion: 0.1.0\n")
    (egg / "entry_points.txt").write_text(ENTRY_POINTS)
    return egg


def _site_packages() -> str:
    return next(p for p in site.getsitepackages() if Path(p, "airflow").is_dir())


def _airflow_plugins(tmp_path: Path, extra_path: list[str]) -> dict[str, object]:
    """The plugins and plugin import errors of Airflow's loader in a fresh interpreter whose sys.path
    is this checkout, the venv's site-packages (no .pth files) and ``extra_path``."""
    code = (
        "import json, sys\n"
        f"sys.path[:0] = {[str(REPO / 'plugins'), _site_packages(), *extra_path]!r}\n"
        "from airflow import plugins_manager\n"
        "plugins, errors = plugins_manager._get_plugins()\n"
        "print(json.dumps({'plugins': [p.name for p in plugins], 'errors': list(errors.values())}))\n"
    )
    env = {"AIRFLOW_HOME": str(tmp_path / "home"), "AIRFLOW__CORE__PLUGINS_FOLDER": str(tmp_path / "plugins"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PATH": "/usr/bin:/bin"}  # fmt: skip
    out = subprocess.run([sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_one_copy_of_the_metadata_registers_the_plugin_once_and_a_leftover_twice(tmp_path):
    both = ["airflow_mlops", "airflow_mlops_run_notes"]  # the package's two airflow.plugins entry points
    once = _airflow_plugins(tmp_path, [])
    assert once["errors"] == [] and [p for p in once["plugins"] if p.startswith("airflow_mlops")] == both
    egg_folder = tmp_path / "checkout" / "plugins"
    _leftover(egg_folder)
    twice = _airflow_plugins(tmp_path, [str(egg_folder)])
    assert [p for p in twice["plugins"] if p.startswith("airflow_mlops")] == both  # OpenLineage's own beside them
    assert twice["errors"] == ["Plugin 'airflow_mlops' already registered, skipping"]  # the leftover's entry


def test_the_check_names_the_leftover_and_how_to_remove_it(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", [_site_packages()])
    assert install_check.duplicate_metadata_warning() is None
    egg = _leftover(tmp_path / "plugins")
    assert install_check.metadata_copies([tmp_path / "plugins"])[-1] == egg.resolve()
    warning = install_check.duplicate_metadata_warning([tmp_path / "plugins"])
    assert warning is not None and f"rm -rf {egg.resolve()}" in warning and "already registered" in warning
