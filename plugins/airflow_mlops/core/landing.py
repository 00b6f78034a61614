"""Claiming newly landed files: light (fsspec only) so the triggerer can run it.

A file is claimed by moving it from the landing inbox into the pipeline's lake.
On a local filesystem the move is an atomic rename, so two pollers can never both
claim one file, and a file that was claimed is never seen in the inbox again.
"""

from __future__ import annotations

from airflow_mlops.core import storage
from airflow_mlops.core.settings import join


def claim_new_files(inbox: str, destination: str, suffixes: tuple[str, ...]) -> list[str]:
    """Move every complete file in ``inbox`` to ``destination``; return the new URIs."""
    claimed = []
    for uri in storage.list_files(inbox, suffixes):
        name = uri.rsplit("/", 1)[-1]
        target = join(destination, name)
        try:
            storage.move(uri, target)
        except FileNotFoundError:
            continue  # claimed by someone else between listing and moving
        claimed.append(target)
    return claimed
