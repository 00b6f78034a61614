"""The committed bundle of the model pages is what the pinned front-end sources build."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
FRONTEND = ROOT / "frontend"


def test_the_committed_bundle_matches_a_build_of_the_sources():
    node = shutil.which("node")
    assert node, "node is needed to check the bundle (Node 20, see README)"
    assert (FRONTEND / "node_modules" / "esbuild").is_dir(), "run `make install` (it runs npm ci in frontend/)"
    done = subprocess.run([node, "build.mjs", "--check"], cwd=FRONTEND, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_lock_file_pins_every_package_the_build_uses():
    lock = json.loads((FRONTEND / "package-lock.json").read_text())
    manifest = json.loads((FRONTEND / "package.json").read_text())
    packages = lock["packages"]
    for name, version in {**manifest["dependencies"], **manifest["devDependencies"]}.items():
        assert version[0].isdigit(), f"{name} is not pinned to one version: {version}"
        assert packages[f"node_modules/{name}"]["version"] == version, name
    assert all("integrity" in entry for key, entry in packages.items() if key and not entry.get("link"))


def test_the_bundle_stays_small():
    bundle = ROOT / "plugins" / "airflow_mlops" / "ui" / "static" / "app.js"
    assert bundle.stat().st_size < 80_000  # Preact and the pages; no component library
