"""S3 (and S3-compatible stores such as MinIO) through boto3, for ``s3://bucket/key`` URIs.

boto3 reads credentials and the endpoint the usual way (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``, profiles, instance
roles). Operators that name an Airflow connection call ``configure`` with that
connection's session arguments first. Writes are single PUTs, so an object appears whole
or not at all; a move is a copy then a delete.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from functools import lru_cache
from typing import Any

_SESSION_KWARGS: dict[str, Any] = {}
_CLIENT_KWARGS: dict[str, Any] = {}


def configure(session_kwargs: dict[str, Any] | None = None, client_kwargs: dict[str, Any] | None = None) -> None:
    """Use these credentials/endpoint for every later call (e.g. from an Airflow AWS connection)."""
    _SESSION_KWARGS.clear()
    _SESSION_KWARGS.update(session_kwargs or {})
    _CLIENT_KWARGS.clear()
    _CLIENT_KWARGS.update(client_kwargs or {})
    _client.cache_clear()


@lru_cache(maxsize=1)
def _client() -> Any:
    import boto3

    return boto3.session.Session(**_SESSION_KWARGS).client("s3", **_CLIENT_KWARGS)


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
        _client().head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if _is_missing(exc):
            return bool(list_keys(uri.rstrip("/") + "/", max_keys=1))
        raise
    return True


def list_keys(prefix_uri: str, max_keys: int | None = None) -> list[str]:
    """Every object URI under a prefix (recursively)."""
    bucket, prefix = split(prefix_uri)
    found: list[str] = []
    for page in _client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found.append(f"s3://{bucket}/{item['Key']}")
            if max_keys is not None and len(found) >= max_keys:
                return found
    return found


def list_children(folder_uri: str) -> list[str]:
    """Objects directly under a folder-like prefix (not in sub-prefixes)."""
    bucket, prefix = split(folder_uri.rstrip("/") + "/")
    found: list[str] = []
    for page in _client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
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
    return bytes(_client().get_object(Bucket=bucket, Key=key)["Body"].read())


def write_bytes(data: bytes, uri: str) -> None:
    bucket, key = split(uri)
    _client().put_object(Bucket=bucket, Key=key, Body=data)


def upload(local_path: str, uri: str) -> None:
    bucket, key = split(uri)
    _client().upload_file(local_path, bucket, key)


def download(uri: str, local_path: str) -> None:
    bucket, key = split(uri)
    _client().download_file(bucket, key, local_path)


def size(uri: str) -> int:
    bucket, key = split(uri)
    return int(_client().head_object(Bucket=bucket, Key=key)["ContentLength"])


def modified_at(uri: str) -> float:
    bucket, key = split(uri)
    stamp: dt.datetime = _client().head_object(Bucket=bucket, Key=key)["LastModified"]
    return stamp.timestamp()


def delete(uri: str) -> None:
    bucket, key = split(uri)
    _client().delete_object(Bucket=bucket, Key=key)


def move(src: str, dst: str) -> None:
    if exists(dst):
        raise FileExistsError(f"refusing to overwrite {dst}")
    src_bucket, src_key = split(src)
    dst_bucket, dst_key = split(dst)
    _client().copy_object(Bucket=dst_bucket, Key=dst_key, CopySource={"Bucket": src_bucket, "Key": src_key})
    delete(src)
