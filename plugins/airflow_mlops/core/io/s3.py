"""S3 (and S3-compatible stores such as MinIO) through boto3, for ``s3://bucket/key`` URIs.

Which account serves a URI is decided per URI. An ``S3Store`` is one account: the boto3
session's arguments (credentials, region) and the client's (endpoint), e.g. built from an
Airflow AWS connection by ``hooks.aws``. ``Stores`` routes URI prefixes to stores (the longest
prefix wins) with a default for every other URI: an operator builds its task's ``Stores``
(the spec's source on its own connection, the artifact and landing roots on theirs) and makes
them current for the task with ``using``. Where no ``Stores`` is current (the triggerer, the
serving app, scripts) or it names no store for a URI, boto3's own chain serves it
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``,
profiles, instance roles).

No module state holds a connection's credentials: the current ``Stores`` lives in a context
variable set by ``using`` and reset when its block ends (a thread started inside the block
sees it only when it copies the context). Writes are single PUTs, so an object appears whole
or not at all; a move is a copy then a delete, through this machine when the two URIs are
served by different stores.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import fnmatch
import hashlib
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

# What boto3's default chain reads from the environment: a change gives a new default client.
_ENVIRONMENT = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION",
                "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_CONFIG_FILE",
                "AWS_SHARED_CREDENTIALS_FILE")  # fmt: skip


class S3Store:
    """One S3 account: boto3 session arguments (keys, region) and client arguments (``endpoint_url``).

    ``name`` says where it comes from (a connection id, "environment") in messages; the
    keys are never part of its text. The client is made on first use, once.
    """

    def __init__(
        self, name: str, session_kwargs: Mapping[str, Any] | None = None, client_kwargs: Mapping[str, Any] | None = None
    ) -> None:
        self.name = name
        self._session_kwargs = dict(session_kwargs or {})
        self._client_kwargs = dict(client_kwargs or {})
        self._client: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        endpoint = self._client_kwargs.get("endpoint_url")
        return f"S3Store({self.name!r}{f', endpoint {endpoint}' if endpoint else ''})"

    @property
    def client(self) -> Any:
        """This account's boto3 S3 client."""
        with self._lock:
            if self._client is None:
                import boto3

                self._client = boto3.session.Session(**self._session_kwargs).client("s3", **self._client_kwargs)
            return self._client


class Stores:
    """Which ``S3Store`` serves which ``s3://`` URI: the longest matching route, else ``default``.

    :param default: the store of every URI no route names; None: boto3's own chain.
    :param routes: ``s3://bucket/prefix`` -> store (a whole bucket: ``s3://bucket/``; None:
        boto3's own chain).
    """

    def __init__(self, default: S3Store | None = None, routes: Mapping[str, S3Store | None] | None = None) -> None:
        self.default = default
        self.routes = dict(routes or {})

    def __repr__(self) -> str:
        return f"Stores(default={self.default!r}, routes={self.routes!r})"

    def for_uri(self, uri: str) -> S3Store | None:
        matching = [prefix for prefix in self.routes if uri.startswith(prefix)]
        return self.routes[max(matching, key=len)] if matching else self.default


def route_prefix(pattern_uri: str) -> str:
    """The literal start of an ``s3://`` URI or pattern, up to a template (``{ds}``) or glob character:
    what a route for all the URIs it can name starts with."""
    return re.split(r"[{*?\[]", pattern_uri, maxsplit=1)[0]


class _Current:
    """The stores of a ``using`` block, built on first use when given as a factory."""

    def __init__(self, stores: Stores | Callable[[], Stores]) -> None:
        self._given = stores
        self._stores: Stores | None = stores if isinstance(stores, Stores) else None
        self._lock = threading.Lock()

    def stores(self) -> Stores:
        with self._lock:
            if self._stores is None:
                build = self._given
                assert callable(build)
                self._stores = build()
            return self._stores


_CURRENT: contextvars.ContextVar[_Current | None] = contextvars.ContextVar("airflow_mlops_s3_stores", default=None)


@contextmanager
def using(stores: Stores | Callable[[], Stores]) -> Iterator[None]:
    """Serve ``s3://`` URIs with ``stores`` inside the block (a factory is called on the first S3 call)."""
    token = _CURRENT.set(_Current(stores))
    try:
        yield
    finally:
        _CURRENT.reset(token)


@lru_cache(maxsize=4)
def _environment_store(signature: str) -> S3Store:
    return S3Store("environment")


def store_for(uri: str) -> S3Store:
    """The store serving ``uri``: the current ``Stores``' choice, else boto3's own chain."""
    current = _CURRENT.get()
    chosen = current.stores().for_uri(uri) if current is not None else None
    if chosen is not None:
        return chosen
    signature = "\0".join(f"{name}={os.environ.get(name, '')}" for name in _ENVIRONMENT)
    return _environment_store(hashlib.sha256(signature.encode()).hexdigest())


def client_for(uri: str) -> Any:
    """The boto3 client of the store serving ``uri``."""
    return store_for(uri).client


def split(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"s3 URI without a bucket: {uri}")
    return bucket, key


def _is_missing(exc: Exception) -> bool:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


def exists(uri: str) -> bool:
    bucket, key = split(uri)
    if not key or key.endswith("/"):
        return bool(list_keys(uri, max_keys=1))
    try:
        client_for(uri).head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if _is_missing(exc):
            return bool(list_keys(uri.rstrip("/") + "/", max_keys=1))
        raise
    return True


def list_keys(prefix_uri: str, max_keys: int | None = None) -> list[str]:
    """Every object URI under a prefix (recursively)."""
    bucket, prefix = split(prefix_uri)
    found: list[str] = []
    for page in client_for(prefix_uri).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found.append(f"s3://{bucket}/{item['Key']}")
            if max_keys is not None and len(found) >= max_keys:
                return found
    return found


def list_children(folder_uri: str) -> list[str]:
    """Objects directly under a folder-like prefix (not in sub-prefixes)."""
    bucket, prefix = split(folder_uri.rstrip("/") + "/")
    found: list[str] = []
    paginator = client_for(folder_uri).get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        found.extend(f"s3://{bucket}/{item['Key']}" for item in page.get("Contents", []))
    return sorted(found)


def glob(pattern_uri: str) -> list[str]:
    """Objects matching a shell pattern; like a filesystem glob, ``*`` does not cross ``/``."""
    bucket, pattern = split(pattern_uri)
    literal = pattern.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]
    matcher = re.compile(fnmatch.translate(pattern).replace(".*", "[^/]*"))
    keys = list_keys(f"s3://{bucket}/{literal}")
    return sorted(uri for uri in keys if matcher.match(split(uri)[1]))


def read_bytes(uri: str) -> bytes:
    bucket, key = split(uri)
    return bytes(client_for(uri).get_object(Bucket=bucket, Key=key)["Body"].read())


def write_bytes(data: bytes, uri: str) -> None:
    bucket, key = split(uri)
    client_for(uri).put_object(Bucket=bucket, Key=key, Body=data)


def upload(local_path: str, uri: str) -> None:
    bucket, key = split(uri)
    client_for(uri).upload_file(local_path, bucket, key)


def download(uri: str, local_path: str) -> None:
    bucket, key = split(uri)
    client_for(uri).download_file(bucket, key, local_path)


def size(uri: str) -> int:
    bucket, key = split(uri)
    return int(client_for(uri).head_object(Bucket=bucket, Key=key)["ContentLength"])


def modified_at(uri: str) -> float:
    bucket, key = split(uri)
    stamp: dt.datetime = client_for(uri).head_object(Bucket=bucket, Key=key)["LastModified"]
    return stamp.timestamp()


def delete(uri: str) -> None:
    bucket, key = split(uri)
    client_for(uri).delete_object(Bucket=bucket, Key=key)


def same_store(first: str, second: str) -> bool:
    """Whether one store serves both URIs (so that S3 can copy between them server-side)."""
    return store_for(first) is store_for(second)


def move(src: str, dst: str) -> None:
    if exists(dst):
        raise FileExistsError(f"refusing to overwrite {dst}")
    if not same_store(src, dst):  # two accounts: no server-side copy between them
        write_bytes(read_bytes(src), dst)
        delete(src)
        return
    src_bucket, src_key = split(src)
    dst_bucket, dst_key = split(dst)
    client_for(dst).copy_object(Bucket=dst_bucket, Key=dst_key, CopySource={"Bucket": src_bucket, "Key": src_key})
    delete(src)
