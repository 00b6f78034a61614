"""The import contracts of pyproject.toml ([tool.importlinter]), run with ``lint-imports``.

Two halves: this checkout keeps every contract, and the contracts bite: on a small fake
``airflow_mlops`` tree each kind of forbidden import (an upward import, two siblings, an entry
point imported from below, an unplaced subpackage, ``airflow`` in the Airflow-free packages,
pandas reached from the serving app through core, spec importing layout) breaks the contract
meant to catch it, and the report names the import. ``lint-imports`` runs in a subprocess so
the package it analyses is the one on its PYTHONPATH, not the one this process imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.unit

PYPROJECT = REPO / "pyproject.toml"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONTRACTS = {c["id"]: c["name"] for c in tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]}

# A tree that keeps every contract: each layer exists and imports only downwards; the operators
# import airflow and core.heavy (sklearn inside a function, as task-time imports do); the serving
# app reaches core.light only.
CLEAN_TREE = {
    "__init__.py": '__version__ = "0"\n',
    "cli.py": "from airflow_mlops.devstack import stack\n",
    "provider_info.py": "from airflow_mlops import __version__\n",
    "layout.py": "import os\n",
    "devstack/stack.py": "from airflow_mlops.core import light\n",
    "ui/plugin.py": "from airflow_mlops.spec import base\n",
    "factories/training.py": "from airflow_mlops.operators import model\nfrom airflow_mlops.sensors import landing\n",
    "operators/model.py": (
        "import airflow\nfrom airflow_mlops.hooks import mlflow\n"
        "def execute():\n    from airflow_mlops.core import heavy\n    from airflow_mlops.serving import model\n"
    ),
    "sensors/landing.py": "from airflow_mlops.triggers import landing\n",
    "notifiers/webhook.py": "import airflow\n",
    "triggers/landing.py": "from airflow_mlops.core import light\n",
    "hooks/mlflow.py": "import airflow\nfrom airflow_mlops.core import light\n",
    "serving/app.py": "from airflow_mlops.serving import model, payload, limits, connections, openapi\n",
    "serving/model.py": "from airflow_mlops.core import light\n",
    "serving/payload.py": "import numpy\n",
    "serving/limits.py": "",
    "serving/connections.py": "",
    "serving/openapi.py": "",
    "core/light.py": "from airflow_mlops.spec import base\nfrom airflow_mlops import layout\n",
    "core/heavy.py": "def train():\n    import sklearn\n    import pandas\n",
    "spec/base.py": "import pydantic\n",
}

# (file, text appended to it, contract that must break, an import the report must name)
VIOLATIONS = {
    "upward": (
        "core/light.py",
        "from airflow_mlops.operators import model\n",
        "layers",
        "core.light -> airflow_mlops.operators.model",
    ),
    "siblings": (
        "sensors/landing.py",
        "from airflow_mlops.operators import model\n",
        "layers",
        "sensors.landing -> airflow_mlops.operators.model",
    ),
    "hooks-serving": (
        "serving/model.py",
        "from airflow_mlops.hooks import mlflow\n",
        "layers",
        "serving.model -> airflow_mlops.hooks.mlflow",
    ),
    "entry-point": (
        "core/light.py",
        "def f():\n    from airflow_mlops import cli\n",
        "layers",
        "core.light -> airflow_mlops.cli",
    ),
    "unplaced": ("extra/__init__.py", "", "layers", "not listed as layers:\n\n- airflow_mlops.extra"),
    "airflow-in-core": (
        "core/heavy.py",
        "def run():\n    import airflow.models\n",
        "airflow-free",
        "core.heavy -> airflow",
    ),
    "airflow-via-hooks": (
        "serving/model.py",
        "def f():\n    from airflow_mlops.hooks import mlflow\n",
        "airflow-free",
        "hooks.mlflow -> airflow",
    ),
    "airflow-in-layout": (
        "layout.py",
        "from airflow.sdk import Asset\n",
        "airflow-free",
        "airflow_mlops.layout -> airflow",
    ),
    "pandas-via-core": (
        "core/light.py",
        "def frame():\n    import pandas\n",
        "serving-hot-path",
        "core.light -> pandas",
    ),
    "sklearn-in-payload": (
        "serving/payload.py",
        "from sklearn.pipeline import Pipeline\n",
        "serving-hot-path",
        "serving.payload -> sklearn",
    ),
    "spec-imports-layout": (
        "spec/base.py",
        "from airflow_mlops import layout\n",
        "spec-layout-leaves",
        "spec.base -> airflow_mlops.layout",
    ),
    "spec-imports-core": (
        "spec/base.py",
        "def f():\n    from airflow_mlops.core import light\n",
        "spec-layout-leaves",
        "spec.base -> airflow_mlops.core.light",
    ),
}


def _lint(plugins: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Every contract of pyproject.toml over the ``airflow_mlops`` found in ``plugins``."""
    env = {**os.environ, "PYTHONPATH": str(plugins), "COLUMNS": "400"}
    return subprocess.run(
        [str(LINT_IMPORTS), str(PYPROJECT), "--no-cache", "--no-logo"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _fake_package(root: Path, extra: tuple[str, str] | None = None) -> Path:
    """Write CLEAN_TREE (plus ``extra`` appended to one file) as root/plugins/airflow_mlops."""
    package = root / "plugins" / "airflow_mlops"
    files = dict(CLEAN_TREE)
    if extra is not None:
        files[extra[0]] = files.get(extra[0], "") + extra[1]
    for relative, text in files.items():
        path = package / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        init = path.parent / "__init__.py"
        if not init.exists():
            init.write_text("")
        path.write_text(text)
    return root / "plugins"


def _status(output: str, contract_id: str) -> str:
    """KEPT or BROKEN for one contract, from the summary lines of lint-imports."""
    name = CONTRACTS[contract_id]
    lines = [line for line in output.splitlines() if line.startswith(name + " ")]
    assert len(lines) == 1, output
    return lines[0].removeprefix(name).split()[0]


def test_the_contracts_are_the_documented_ones():
    assert set(CONTRACTS) == {"layers", "airflow-free", "serving-hot-path", "spec-layout-leaves"}


@pytest.fixture(scope="module")
def checkout_report(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """One lint-imports run over this checkout's plugins/ (run from elsewhere: no cache left here)."""
    return _lint(REPO / "plugins", tmp_path_factory.mktemp("lint"))


@pytest.mark.parametrize("contract_id", sorted(CONTRACTS))
def test_this_checkout_keeps_the_contract(contract_id: str, checkout_report: subprocess.CompletedProcess[str]):
    assert _status(checkout_report.stdout, contract_id) == "KEPT", checkout_report.stdout + checkout_report.stderr


def test_the_fake_tree_keeps_every_contract(tmp_path: Path):
    result = _lint(_fake_package(tmp_path), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert all(_status(result.stdout, c) == "KEPT" for c in CONTRACTS)


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_a_forbidden_import_breaks_its_contract(case: str, tmp_path: Path):
    file, text, contract_id, named = VIOLATIONS[case]
    result = _lint(_fake_package(tmp_path, (file, text)), tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert _status(result.stdout, contract_id) == "BROKEN", result.stdout
    assert named in result.stdout, result.stdout
