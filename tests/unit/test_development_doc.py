"""docs/development.md's layout names every module of the package: a newcomer's map stays true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "plugins" / "airflow_mlops"


def _layout_block() -> str:
    text = (REPO / "docs" / "development.md").read_text(encoding="utf-8")
    start = text.index("## Layout, one line per module")
    return text[start : text.index("## Contracts", start)]


def test_every_module_is_named_in_the_layout():
    layout = _layout_block()
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py" and path.parent != PACKAGE:
            continue
        # Named as "name.py", or in a folder's inline list ("compose_env,", "(stack,", "stack_cli)").
        stem = path.stem
        if f"{stem}.py" not in layout and not re.search(rf"[ (]{re.escape(stem)}[,)]", layout):
            missing.append(str(path.relative_to(PACKAGE)))
    assert not missing, f"docs/development.md's layout does not name: {missing}"


def test_every_folder_is_named_in_the_layout():
    layout = _layout_block()
    folders = sorted({p.parent.relative_to(PACKAGE).parts[-1] for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE})
    missing = [folder for folder in folders if f"{folder}/" not in layout]
    assert not missing, f"docs/development.md's layout does not name the folders: {missing}"
