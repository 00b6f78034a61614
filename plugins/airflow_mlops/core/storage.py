"""Reading and writing artifacts by URI (plain path, file://, s3://) through fsspec.

Light on purpose (fsspec only, no pandas): the triggerer claims landed files with it.

Writes are atomic: a local file is written beside its target and renamed into
place; an object store gets one PUT. A killed task never leaves a half file that a
later task would trust.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import uuid
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from airflow_mlops.core.settings import join

TABULAR_SUFFIXES = (".parquet", ".csv")


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def write_bytes(data: bytes, uri: str) -> str:
    """Write ``data`` to ``uri`` atomically and return the URI."""
    fs, path = filesystem(uri)
    if _is_local(fs):
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f".tmp-{uuid.uuid4().hex}-{os.path.basename(path)}")
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    else:
        fs.pipe_file(path, data)
    return uri


def put_file(local_path: str, uri: str) -> str:
    """Publish a local file at ``uri`` atomically without holding it in memory."""
    fs, path = filesystem(uri)
    if not _is_local(fs):
        fs.put_file(local_path, path)  # one upload; the object appears whole or not at all
        return uri
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".tmp-{uuid.uuid4().hex}-{os.path.basename(path)}")
    try:
        shutil.copyfile(local_path, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return uri


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    return bytes(fs.cat_file(path))


def write_json(obj: Any, uri: str) -> str:
    return write_bytes(json.dumps(obj, indent=2, sort_keys=True, default=str).encode(), uri)


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))


def write_text(text: str, uri: str) -> str:
    return write_bytes(text.encode("utf-8"), uri)


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return bool(fs.exists(path))


def list_files(directory: str, suffixes: tuple[str, ...] = TABULAR_SUFFIXES) -> list[str]:
    """Files directly under ``directory`` with one of ``suffixes``, sorted by name.

    Hidden and temporary files (a leading '.' or '_') are skipped: they are writes in
    progress or markers, never data.
    """
    fs, path = filesystem(directory)
    if not fs.exists(path):
        return []
    found = []
    for entry in fs.ls(path, detail=False):
        name = entry.rstrip("/").rsplit("/", 1)[-1]
        if name.startswith((".", "_")) or not name.endswith(suffixes):
            continue
        found.append(join(directory, name))
    return sorted(found)


def modified_at(uri: str) -> float:
    """Last modification time (epoch seconds) of a file."""
    fs, path = filesystem(uri)
    if _is_local(fs):
        return os.stat(path).st_mtime
    modified = fs.modified(path)
    return float(modified.timestamp())


def move(src: str, dst: str) -> str:
    """Move a file without ever replacing an existing one.

    Locally a rename is atomic, so a file is claimed at most once; across devices the
    file is copied beside its target, renamed into place, then the source removed.
    """
    fs, src_path = filesystem(src)
    _, dst_path = filesystem(dst)
    if fs.exists(dst_path):
        raise FileExistsError(f"refusing to overwrite {dst}")
    if not _is_local(fs):
        fs.mv(src_path, dst_path)
        return dst
    os.makedirs(os.path.dirname(dst_path), exist_ok=True)
    try:
        os.rename(src_path, dst_path)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        with open(src_path, "rb") as handle:
            write_bytes(handle.read(), dst)
        os.remove(src_path)
    return dst
