"""Reading and writing artifacts by URI: local paths (plain or ``file://``) and ``s3://``.

Light on purpose (no pandas): the triggerer claims landed files with it. S3 goes through
boto3 (``core.io.s3``), each URI served by the store ``core.io.s3.store_for`` chooses (the
task's ``Stores``, else boto3's own chain); local files through the OS.

Writes are atomic: a local file is written beside its target and renamed into place; an
object store gets one PUT. A killed task never leaves a half file that a later task
would trust.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from airflow_mlops.layout import join

TABULAR_SUFFIXES = (".parquet", ".csv")


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def local_path(uri: str) -> str:
    """The filesystem path of a local URI (``file:///x`` or ``/x``)."""
    if uri.startswith("file://"):
        return uri[len("file://") :]
    if "://" in uri:
        raise ValueError(f"unsupported storage scheme in {uri}: use a local path, file:// or s3://")
    return uri


def _replace_atomically(path: str, fill: Callable[[str], object]) -> None:
    """Let ``fill`` write a temporary file beside ``path``, then rename it into place."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".tmp-{uuid.uuid4().hex}-{os.path.basename(path)}")
    try:
        fill(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_bytes(data: bytes, uri: str) -> str:
    """Write ``data`` to ``uri`` atomically and return the URI."""
    if is_s3(uri):
        from airflow_mlops.core.io import s3

        s3.write_bytes(data, uri)
        return uri

    def fill(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    _replace_atomically(local_path(uri), fill)
    return uri


def put_file(source_path: str, uri: str) -> str:
    """Publish a local file at ``uri`` atomically without holding it in memory."""
    if is_s3(uri):
        from airflow_mlops.core.io import s3

        s3.upload(source_path, uri)
        return uri
    _replace_atomically(local_path(uri), lambda tmp: shutil.copyfile(source_path, tmp))
    return uri


def move_file(source_path: str, uri: str) -> str:
    """Publish a local file that is not needed afterwards at ``uri``, atomically.

    On the same filesystem it is renamed into place (no copy of a large dataset); across
    filesystems, or to S3, it is copied like ``put_file`` and the source removed.
    """
    if not is_s3(uri):
        target = local_path(uri)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        try:
            os.replace(source_path, target)
            return uri
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
    put_file(source_path, uri)
    os.remove(source_path)
    return uri


def read_bytes(uri: str) -> bytes:
    if is_s3(uri):
        from airflow_mlops.core.io import s3

        return s3.read_bytes(uri)
    with open(local_path(uri), "rb") as handle:
        return handle.read()


@contextmanager
def local_copy(uri: str) -> Iterator[str]:
    """A local path holding the file's bytes: the file itself, or a temporary download."""
    if not is_s3(uri):
        yield local_path(uri)
        return
    from airflow_mlops.core.io import s3

    with tempfile.TemporaryDirectory(prefix="airflow-mlops-s3-") as tmp:
        path = os.path.join(tmp, uri.rsplit("/", 1)[-1] or "object")
        s3.download(uri, path)
        yield path


def write_json(obj: Any, uri: str) -> str:
    return write_bytes(json.dumps(obj, indent=2, sort_keys=True, default=str).encode(), uri)


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))


def write_text(text: str, uri: str) -> str:
    return write_bytes(text.encode("utf-8"), uri)


def exists(uri: str) -> bool:
    if is_s3(uri):
        from airflow_mlops.core.io import s3

        return s3.exists(uri)
    return os.path.exists(local_path(uri))


def is_folder(uri: str) -> bool:
    if is_s3(uri):
        from airflow_mlops.core.io import s3

        return uri.endswith("/") or bool(s3.list_keys(uri.rstrip("/") + "/", max_keys=1))
    return os.path.isdir(local_path(uri))


def size(uri: str) -> int:
    if is_s3(uri):
        from airflow_mlops.core.io import s3

        return s3.size(uri)
    return os.path.getsize(local_path(uri))


def _is_data_name(name: str, suffixes: tuple[str, ...]) -> bool:
    return not name.startswith((".", "_")) and name.endswith(suffixes)


def list_files(directory: str, suffixes: tuple[str, ...] = TABULAR_SUFFIXES) -> list[str]:
    """Files directly under ``directory`` with one of ``suffixes``, sorted by name.

    Hidden and temporary files (a leading '.' or '_') are skipped: they are writes in
    progress or markers, never data.
    """
    if is_s3(directory):
        from airflow_mlops.core.io import s3

        children = s3.list_children(directory)
        return [uri for uri in children if _is_data_name(uri.rsplit("/", 1)[-1], suffixes)]
    path = local_path(directory)
    if not os.path.isdir(path):
        return []
    return sorted(join(directory, name) for name in os.listdir(path) if _is_data_name(name, suffixes)
                  and os.path.isfile(os.path.join(path, name)))  # fmt: skip


def list_files_recursive(directory: str, suffixes: tuple[str, ...] = TABULAR_SUFFIXES) -> list[str]:
    """Data files anywhere under ``directory`` (e.g. date partitions), sorted by full name."""
    if is_s3(directory):
        from airflow_mlops.core.io import s3

        keys = s3.list_keys(directory.rstrip("/") + "/")
        return sorted(uri for uri in keys if _is_data_name(uri.rsplit("/", 1)[-1], suffixes))
    root = local_path(directory)
    found = []
    for folder, _, names in os.walk(root):
        relative = os.path.relpath(folder, root)
        for name in names:
            if _is_data_name(name, suffixes):
                found.append(join(directory, "" if relative == "." else relative, name))
    return sorted(found)


def glob(pattern: str) -> list[str]:
    if is_s3(pattern):
        from airflow_mlops.core.io import s3

        return s3.glob(pattern)
    import glob as globbing

    prefix = "file://" if pattern.startswith("file://") else ""
    return sorted(f"{prefix}{p}" for p in globbing.glob(local_path(pattern)) if os.path.isfile(p))


def modified_at(uri: str) -> float:
    """Last modification time (epoch seconds) of a file."""
    if is_s3(uri):
        from airflow_mlops.core.io import s3

        return s3.modified_at(uri)
    return os.stat(local_path(uri)).st_mtime


def move(src: str, dst: str) -> str:
    """Move a file without ever replacing an existing one.

    Locally a rename is atomic, so a file is claimed at most once; across devices the
    file is copied beside its target, renamed into place, then the source removed.
    On S3 a move is a copy then a delete.
    """
    if is_s3(src) or is_s3(dst):
        if not (is_s3(src) and is_s3(dst)):
            write_bytes(read_bytes(src), dst)
            _remove(src)
            return dst
        from airflow_mlops.core.io import s3

        s3.move(src, dst)
        return dst
    src_path, dst_path = local_path(src), local_path(dst)
    if os.path.exists(dst_path):
        raise FileExistsError(f"refusing to overwrite {dst}")
    os.makedirs(os.path.dirname(dst_path), exist_ok=True)
    try:
        os.rename(src_path, dst_path)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        put_file(src_path, dst)
        os.remove(src_path)
    return dst


def _remove(uri: str) -> None:
    if is_s3(uri):
        from airflow_mlops.core.io import s3

        s3.delete(uri)
    else:
        os.remove(local_path(uri))
