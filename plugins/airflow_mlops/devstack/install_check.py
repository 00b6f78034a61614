"""A second copy of the package's metadata, which makes Airflow register the plugin twice.

``pip install -e .`` leaves ``plugins/airflow_mlops.egg-info`` beside the package (setuptools
writes it there while asking for the build requirements) and puts ``plugins/`` on ``sys.path``;
Airflow also puts its plugins folder there. ``importlib.metadata`` then finds two
``airflow-mlops`` distributions, the installed ``.dist-info`` and that leftover, and Airflow's
plugin loader takes the ``airflow.plugins`` entry point of each: the second is reported as a
plugin import error, "Plugin 'airflow_mlops' already registered". ``make install`` and the
Dockerfile remove the leftover; the stack commands warn about one they find.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_mlops.devstack.stack import StackConfig

DISTRIBUTION = "airflow-mlops"


def metadata_copies(extra_paths: Iterable[Path] = ()) -> list[Path]:
    """Every ``airflow-mlops`` metadata folder on ``sys.path`` and ``extra_paths`` (the folders
    Airflow adds: dags, plugins), each once, the installed one first."""
    from importlib import metadata

    path = [*sys.path, *(str(p) for p in extra_paths)]
    seen: dict[Path, None] = {}
    for dist in metadata.distributions(path=path):
        name = (dist.metadata["Name"] or "").replace("_", "-").lower()
        where = getattr(dist, "_path", None)  # PathDistribution: its metadata folder
        if name == DISTRIBUTION and where is not None:
            seen[Path(where).resolve()] = None
    return sorted(seen, key=lambda p: (p.suffix != ".dist-info", str(p)))


def duplicate_metadata_warning(extra_paths: Iterable[Path] = ()) -> str | None:
    """What to tell the user when Airflow will find the package twice, or None."""
    copies = metadata_copies(extra_paths)
    leftovers = [p for p in copies if p.suffix == ".egg-info"]
    if len(copies) < 2 or not leftovers:
        return None
    return (
        f"warning: {len(copies)} copies of {DISTRIBUTION}'s metadata are importable ({', '.join(map(str, copies))}); "
        "Airflow will register its plugin twice and list a plugin import error (\"Plugin 'airflow_mlops' already "
        f'registered"). Remove the leftover of `pip install -e`: rm -rf {" ".join(map(str, leftovers))}'
    )


def warn(cfg: StackConfig) -> None:
    """Print that warning (stderr) for the folders the stack's Airflow adds to ``sys.path``."""
    warning = duplicate_metadata_warning([cfg.dags_folder, cfg.plugins_folder or cfg.airflow_home / "plugins"])
    if warning:
        print(warning, file=sys.stderr)
