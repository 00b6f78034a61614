"""Which S3 store serves which URI: routes, the current stores of a block, the environment's chain."""

from __future__ import annotations

import contextvars
import threading

import pytest

from airflow_mlops.core.io import s3
from airflow_mlops.core.io.s3 import S3Store, Stores, route_prefix

pytestmark = pytest.mark.unit


def test_the_longest_matching_route_serves_a_uri_else_the_default():
    source, roots, default = S3Store("source"), S3Store("roots"), S3Store("default")
    stores = Stores(default, {"s3://shared/": source, "s3://shared/artifacts/": roots, "s3://plain/": None})
    assert stores.for_uri("s3://shared/exports/2026-11-22/a.csv") is source
    assert stores.for_uri("s3://shared/artifacts/churn/runs/r1/x.parquet") is roots
    assert stores.for_uri("s3://elsewhere/x") is default
    assert stores.for_uri("s3://plain/x") is None  # routed to boto3's own chain


def test_a_route_is_the_literal_start_of_a_source_uri():
    assert route_prefix("s3://bucket/exports/{ds}/") == "s3://bucket/exports/"
    assert route_prefix("s3://bucket/in/*.csv") == "s3://bucket/in/"
    assert route_prefix("s3://bucket/in/day-[0-9].csv") == "s3://bucket/in/day-"
    assert route_prefix("s3://bucket/one.parquet") == "s3://bucket/one.parquet"


def test_stores_are_current_inside_their_block_only_and_built_on_first_use():
    store, built = S3Store("connection a"), []

    def build() -> Stores:
        built.append(1)
        return Stores(store)

    seen: dict[str, str] = {}
    with s3.using(build):
        assert built == []  # nothing looked up before an s3:// URI is served
        assert s3.store_for("s3://b/x") is store and s3.store_for("s3://b/y") is store
        assert built == [1]
        plain = threading.Thread(target=lambda: seen.update(plain=s3.store_for("s3://b/x").name))
        copied = threading.Thread(
            target=contextvars.copy_context().run, args=(lambda: seen.update(copied=s3.store_for("s3://b/x").name),)
        )
        for thread in (plain, copied):
            thread.start()
            thread.join()
    assert seen == {"plain": "environment", "copied": "connection a"}  # a thread needs the context copied
    assert s3.store_for("s3://b/x").name == "environment"


def test_nested_blocks_restore_the_outer_stores():
    outer, inner = S3Store("outer"), S3Store("inner")
    with s3.using(Stores(outer)):
        with s3.using(Stores(inner)):
            assert s3.store_for("s3://b/x") is inner
        assert s3.store_for("s3://b/x") is outer
        assert s3.same_store("s3://b/x", "s3://c/y")


def test_a_store_never_shows_its_keys():
    store = S3Store("connection a", {"aws_access_key_id": "AKIAEXAMPLEKEY", "aws_secret_access_key": "wJalrEXAMPLE"},
                    {"endpoint_url": "http://127.0.0.1:1"})  # fmt: skip
    for text in (repr(store), repr(Stores(store, {"s3://b/": store}))):
        assert "AKIAEXAMPLEKEY" not in text and "wJalrEXAMPLE" not in text and "http://127.0.0.1:1" in text


def test_the_environment_store_follows_the_environment(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1")
    first = s3.store_for("s3://b/k")
    assert s3.store_for("s3://b/other") is first  # one client while the environment stays the same
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:2")
    assert s3.store_for("s3://b/k") is not first
