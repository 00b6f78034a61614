"""Hostile request bodies: size and rows bounded before decoding, the event loop kept free,
no 500 from any body, numbers beyond the model's float32 range refused."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from airflow_mlops.core.operations.prediction_log import PredictionLogger
from airflow_mlops.serving.app import ServingApp
from airflow_mlops.serving.config import ServeConfig
from airflow_mlops.serving.inprocess import call
from airflow_mlops.serving.model import ServedModel
from airflow_mlops.serving.payload import InputSchema, PayloadError, parse_body
from airflow_mlops.spec import load_spec, parse_spec
from tests.conftest import EXAMPLE_SPEC

pytestmark = pytest.mark.component

REPO = Path(__file__).resolve().parents[3]
MiB = 1 << 20
ROW = {"customer_id": "c-1", "tenure_months": 3, "monthly_charges": 80.5, "support_calls": 4, "usage_gb": None,
       "plan": "basic", "region": "north", "payment_method": "card"}  # fmt: skip
COLUMNS = list(ROW)


def _hostile(shape: str, size: int = 16 * MiB) -> bytes:
    """A body just under ``size`` bytes of the cheapest rows (or values) of ``shape``."""
    size -= 300
    if shape == "split":
        head = json.dumps({"columns": COLUMNS}).encode()[:-1]
        return b'{"dataframe_split":' + head + b',"data":[' + b",".join([b"[]"] * (size // 3)) + b"]}}"
    if shape == "records":
        return b'{"instances":[' + b",".join([b"{}"] * (size // 3)) + b"]}"
    return b'{"inputs":{"tenure_months":[' + b",".join([b"0"] * (size // 2)) + b"]}}"


class _Session:
    """Stands in for ONNX Runtime: label 1 and probability 0.75 for every row."""

    def run(self, _names, feeds):
        rows = len(next(iter(feeds.values())))
        return [np.ones(rows, dtype=np.int64), np.tile([[0.25, 0.75]], (rows, 1))]


def _app(tmp_path=None, **overrides) -> ServingApp:
    spec = load_spec(EXAMPLE_SPEC)
    schema = InputSchema.from_spec(spec)
    model = ServedModel("churn", "1", "run", "classification", "memory://", _Session(), {}, "now", classes=(0, 1))
    logger = None
    if tmp_path is not None:
        logger = PredictionLogger(str(tmp_path), "churn", spec.data.id_column, list(schema.model_numeric),
                                  list(schema.categorical), flush_rows=1_000_000, flush_seconds=3600)  # fmt: skip
    config = ServeConfig(spec_path=str(EXAMPLE_SPEC), tracking_uri="memory://", require_token=False, **overrides)
    return ServingApp(schema, config, load=lambda version: model, probe=lambda: "1", prediction_logger=logger)


# -- size and rows: refused before decoding, the loop stays free -----------------------------


def test_hostile_16_mib_bodies_are_refused_fast_while_health_checks_stay_under_100_ms():
    app = _app()
    bodies = [_hostile(shape) for shape in ("split", "records", "inputs")]
    live: list[float] = []
    answers: list[tuple[int, float]] = []

    async def probe(stop: asyncio.Event) -> None:
        while not stop.is_set():  # a check due every 5 ms: how late was its answer?
            start = time.perf_counter()
            await asyncio.sleep(0.005)
            status, _, _ = await call(app, "GET", "/health/live")
            assert status == 200
            live.append(time.perf_counter() - start - 0.005)

    async def send(body: bytes) -> None:
        start = time.perf_counter()
        status, _, answer = await call(app, "POST", "/v1/predict", body)
        answers.append((status, time.perf_counter() - start))
        assert b"at most 10000 per request" in answer, answer[:300]

    async def scenario() -> None:
        await app.startup()
        await call(app, "POST", "/v1/predict", bodies[2])  # builds the inputs census (~90 ms, once per app)
        stop = asyncio.Event()
        prober = asyncio.create_task(probe(stop))
        try:
            await asyncio.sleep(0.02)
            for _ in range(2):
                await asyncio.gather(*(send(body) for body in bodies))
            await asyncio.sleep(0.02)
        finally:
            stop.set()
            await prober
            await app.shutdown()

    asyncio.run(scenario())
    assert [status for status, _ in answers] == [422] * 6
    assert max(seconds for _, seconds in answers) < 1.0, answers
    print(f"/health/live: {len(live)} calls, slowest {max(live) * 1000:.1f} ms")
    assert len(live) >= 3 and max(live) < 0.1, f"slowest /health/live: {max(live) * 1000:.0f} ms"


@pytest.mark.parametrize("shape", ["split", "records", "inputs"])
def test_a_hostile_body_costs_little_memory_to_refuse(shape):
    """Peak RSS growth of a fresh process refusing one 16 MiB body (split: ~315 MiB before the fix)."""
    script = textwrap.dedent(f"""
        import resource, sys
        sys.path[:0] = [{str(REPO / "plugins")!r}, {str(REPO)!r}]
        from airflow_mlops.spec import load_spec
        from airflow_mlops.serving.payload import InputSchema, PayloadError, parse_body
        from tests.component.serving.test_bodies import _hostile
        schema = InputSchema.from_spec(load_spec({str(EXAMPLE_SPEC)!r}))
        for body in (_hostile({shape!r}, 64 * 1024), _hostile({shape!r})):  # the first builds the decoders
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            try:
                parse_body(body, schema)
            except PayloadError:
                pass
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    growth_mib = int(result.stdout.strip()) / 1024  # ru_maxrss is in KiB on Linux
    assert growth_mib < 32, f"peak RSS grew by {growth_mib:.0f} MiB"


def test_a_declared_content_length_over_the_limit_is_refused_unread():
    app = _app(max_body_bytes=1000)
    received = []

    async def receive():
        received.append(1)
        return {"type": "http.request", "body": b"x" * 2000, "more_body": False}

    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/predict", "headers": [(b"content-length", b"2000")]}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413 and received == []
    assert json.loads(sent[1]["body"])["detail"] == "body over the limit of 1000 bytes (0.000953674 MiB)"


def _shapes(rows: list[dict]) -> dict[str, dict]:
    return {
        "instances": {"instances": rows},
        "dataframe_split": {"dataframe_split": {"columns": COLUMNS, "data": [[r[c] for c in COLUMNS] for r in rows]}},
        "inputs": {"inputs": {c: [r[c] for r in rows] for c in COLUMNS}},
    }


@pytest.mark.parametrize("shape", ["instances", "dataframe_split", "inputs"])
def test_rows_over_the_limit_are_refused_in_every_shape_naming_the_limit(spec, shape):
    schema = InputSchema.from_spec(spec, max_rows=50)
    # Strings holding commas and escaped quotes: the census counts rows, not separators.
    rows = [dict(ROW, customer_id=f'c,"{i}",\\', plan="a,b") for i in range(51)]
    with pytest.raises(PayloadError) as info:
        parse_body(json.dumps(_shapes(rows)[shape]).encode(), schema)
    (error,) = info.value.errors
    assert error["type"] == "too_long" and error["loc"][:2] == ["body", shape], error
    assert error["msg"] == "more than 50 rows; at most 50 per request"
    assert parse_body(json.dumps(_shapes(rows[:50])[shape]).encode(), schema).rows == 50


# -- no 500 from a body ----------------------------------------------------------------------

DEEP = "[" * 10_000 + "]" * 10_000


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"instances":' + DEEP.encode() + b"}", ""),
        (json.dumps({"instances": [dict(ROW, extra="X")]}).replace('"X"', DEEP).encode(), "too deeply"),
        (json.dumps({"instances": [ROW], "params": "X"}).replace('"X"', DEEP).encode(), "too deeply"),
        (json.dumps({"instances": [ROW] * 3000 + ["X"]}).replace('"X"', DEEP).encode(), ""),
        (b'{"instances":[' + b'{"a":' * 10_000 + b"1" + b"}" * 10_000 + b"]}", "too deeply"),
        (json.dumps({"instances": [dict(ROW, plan="X")]}).encode().replace(b'"X"', b'"\xff\xfe"'), "not valid UTF-8"),
        (json.dumps({"instances": [ROW]}).encode().replace(b"region", b"regi\xc3on"), "not valid UTF-8"),
        (json.dumps({"instances": [dict(ROW, plan="X")] * 3000}).encode().replace(b'"X"', b'"\xff"'), "UTF-8"),
    ],
    ids=[
        "deep-rows",
        "deep-ignored-field",
        "deep-top-level",
        "deep-large",
        "deep-objects",
        "utf8-value",
        "utf8-key",
        "utf8-large",
    ],
)
def test_deep_nesting_and_invalid_utf8_get_a_422_and_no_traceback(body, fragment, caplog):
    app = _app()

    async def scenario():
        await app.startup()
        try:
            return await call(app, "POST", "/v1/predict", body)
        finally:
            await app.shutdown()

    with caplog.at_level(logging.INFO):
        status, _, answer = asyncio.run(scenario())
    assert status == 422, answer[:300]
    detail = json.loads(answer)["detail"]
    assert fragment in detail[0]["msg"] and len(detail[0]["msg"]) < 200
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


# -- numbers: within float32 or refused -------------------------------------------------------


@pytest.mark.parametrize("value", ["1e39", "1e90", "-1e142", "3.5e38"])
@pytest.mark.parametrize("shape", ["instances", "dataframe_split", "inputs"])
def test_numbers_beyond_float32_are_refused_naming_the_field_and_row(spec, shape, value):
    rows = [dict(ROW), dict(ROW), dict(ROW, monthly_charges="X")]
    body = json.dumps(_shapes(rows)[shape]).replace('"X"', value).encode()
    with pytest.raises(PayloadError) as info:
        parse_body(body, InputSchema.from_spec(spec))
    (error,) = info.value.errors
    place = {"instances": ["instances", 2, "monthly_charges"], "dataframe_split": ["dataframe_split", "data", 2, 2],
             "inputs": ["inputs", "monthly_charges", 2]}[shape]  # fmt: skip
    assert error["loc"] == ["body", *place] and error["type"] == "out_of_range"
    assert "beyond the model's float32 range" in error["msg"]


def test_the_largest_float32_and_missing_values_still_pass(spec):
    rows = [dict(ROW, monthly_charges=3.4e38), dict(ROW, monthly_charges=-3.4e38), dict(ROW, monthly_charges=None)]
    inputs = parse_body(json.dumps({"instances": rows}).encode(), InputSchema.from_spec(spec))
    feed = inputs.feeds["monthly_charges"].ravel()
    assert np.isfinite(feed[:2]).all() and np.isnan(feed[2])


def test_a_derived_feature_beyond_float32_is_refused_naming_it():
    text = (
        Path(EXAMPLE_SPEC)
        .read_text()
        .replace(
            "    categorical: [plan, region, payment_method]",
            "    categorical: [plan, region, payment_method]\n    derived: {big: 'monthly_charges * usage_gb'}",
        )
    )
    schema = InputSchema.from_spec(parse_spec(text))
    rows = [dict(ROW, usage_gb=2.0), dict(ROW, monthly_charges=1e30, usage_gb=1e30)]
    with pytest.raises(PayloadError) as info:
        parse_body(json.dumps({"instances": rows}).encode(), schema)
    assert [e["loc"] for e in info.value.errors] == [["body", "derived", "big", 1]]


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", '"NaN"', '"Infinity"', "1e400"])
def test_nan_and_infinity_never_reach_the_model_or_the_log(tmp_path, token):
    app = _app(tmp_path)
    bad = json.dumps({"instances": [ROW, dict(ROW, monthly_charges="X")]}).replace('"X"', token).encode()
    good = json.dumps({"instances": [ROW, dict(ROW, monthly_charges=None)]}).encode()

    async def scenario():
        await app.startup()
        try:
            return [await call(app, "POST", "/v1/predict", body) for body in (bad, good)]
        finally:
            await app.shutdown()

    (refused, _, answer), (accepted, _, _) = asyncio.run(scenario())
    assert refused == 422, answer
    assert accepted == 200  # null stays a missing value
    assert app.prediction_logger.written_rows == 2  # the accepted request only
