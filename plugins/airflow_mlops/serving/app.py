"""The serving app: a plain ASGI application (uvicorn runs it) around the champion's ONNX graph.

Endpoints: ``POST /v1/predict`` (and ``/invocations``, the path ``mlflow models serve``
uses), ``GET /v1/model``, ``GET /health/live``, ``GET /health/ready``, ``GET /metrics``
(Prometheus text), ``GET /openapi.json``. Prediction, model and metrics endpoints need
``Authorization: Bearer <token>`` unless the app was started without tokens on purpose.

Hot swap: a background task asks the registry which version holds the ``champion``
alias every ``poll_seconds``; a new version is loaded beside the current one (in a
thread, the event loop keeps answering) and replaces it with one assignment. Each
request takes the model once, at its start, so in-flight requests finish on the model
they started with and no request fails during a swap. A version that fails to load is
not swapped in (the current one keeps serving) and is retried after a minute.

No credential leaves in an answer or a log line: failures are described once, when they
happen, with ``core.redaction`` (URL userinfo, tokens, the known secret values masked);
unauthenticated endpoints name only a reason class (``NOT_READY_REASONS``), never an
exception's text, and the process's log records are redacted as they are made.

No framework on purpose: the hot path (decode, check, predict, encode, log) costs tens
of microseconds more than the model itself; see docs/serving.md for figures.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import gc
import hmac
import itertools
import json
import logging
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import msgspec
import numpy as np

from airflow_mlops.core.operations.prediction_log import PredictionLogger
from airflow_mlops.core.redaction import describe_error, install_record_factory, redact_secrets
from airflow_mlops.serving.connections import closed as closed_connections
from airflow_mlops.serving.model import ModelLoadError, Prediction, ServedModel
from airflow_mlops.serving.openapi import openapi_document
from airflow_mlops.serving.payload import InputSchema, ModelInputs, PayloadError, parse_body

logger = logging.getLogger("airflow_mlops.serving")

CONFIG_ENV = "AIRFLOW_MLOPS_SERVE_CONFIG"
TOKEN_ENV = "AIRFLOW_MLOPS_SERVE_TOKEN"
MIN_TOKEN_CHARS = 16
RETRY_FAILED_VERSION_SECONDS = 60.0
# Bodies over this are decoded off the event loop (about 330 rows of the churn spec, ~0.5 ms
# to parse here); smaller ones on it. At most DECODE_THREADS large bodies decode at once.
OFFLOAD_BODY_BYTES = 64 * 1024
DECODE_THREADS = 2
# Why no model serves, as unauthenticated endpoints say it (no exception text, no URL).
STARTING, REGISTRY_UNREACHABLE, NO_CHAMPION, LOAD_FAILED = (
    "starting", "registry unreachable", "no champion", "model failed to load"
)  # fmt: skip
NOT_READY_REASONS = (STARTING, REGISTRY_UNREACHABLE, NO_CHAMPION, LOAD_FAILED)
# Variables whose values are secrets wherever they appear in a message.
SECRET_ENV = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
_encode = msgspec.json.Encoder().encode
_JSON = [(b"content-type", b"application/json")]


@dataclass
class ServeConfig:
    """How one serving process runs; passed to uvicorn workers through ``CONFIG_ENV`` (tokens excluded)."""

    spec_path: str
    tracking_uri: str
    poll_seconds: float = 5.0
    max_rows: int = 10_000
    max_body_bytes: int = 16 * 1024 * 1024
    log_predictions: bool = True
    log_flush_rows: int = 100_000
    log_flush_seconds: float = 5.0
    onnx_threads: int = 1
    require_token: bool = True
    freeze_gc: bool = False  # the serve command turns it on; an app inside a task or a test leaves the GC alone
    tokens: tuple[str, ...] = field(default=(), repr=False)

    def to_env(self) -> str:
        data = asdict(self)
        data.pop("tokens")
        return json.dumps(data)

    @classmethod
    def from_env(cls) -> ServeConfig:
        raw = os.environ.get(CONFIG_ENV)
        if not raw:
            raise RuntimeError(f"{CONFIG_ENV} is not set: start the app with `airflow-mlops serve <spec>`")
        config = cls(**json.loads(raw))
        config.tokens = tokens_from_env()
        config.check()
        return config

    def check(self) -> None:
        if self.require_token and not self.tokens:
            raise RuntimeError(
                f"no bearer token: set {TOKEN_ENV} (comma-separated for several) or start with --no-auth"
            )
        short = [i for i, token in enumerate(self.tokens, start=1) if len(token) < MIN_TOKEN_CHARS]
        if self.require_token and short:  # named by position: the value itself is never shown
            raise RuntimeError(
                f"{TOKEN_ENV}: token {', '.join(map(str, short))} of {len(self.tokens)} is shorter than "
                f"{MIN_TOKEN_CHARS} characters; use a random one (e.g. `openssl rand -hex 24`)"
            )


def tokens_from_env() -> tuple[str, ...]:
    return tuple(t.strip() for t in os.environ.get(TOKEN_ENV, "").split(",") if t.strip())


def secret_values(config: ServeConfig) -> tuple[str, ...]:
    """Values masked wherever they appear in a message: the bearer tokens, MLflow's and AWS's secrets,
    the password in the tracking URI (``redact`` masks URL userinfo too; this also catches it quoted)."""
    from urllib.parse import urlsplit

    values = [*config.tokens, *(os.environ.get(name) for name in SECRET_ENV)]
    with contextlib.suppress(ValueError):  # not a URL: nothing in it to mask
        values.append(urlsplit(config.tracking_uri).password)
    return tuple(v for v in values if v)


def configure_logging(config: ServeConfig) -> None:
    """The serving process's logging: INFO for the app, WARNING for HTTP clients (httpx would log
    every alias poll with its full URL), every record redacted as it is made."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    for name in ("httpx", "httpcore", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    install_record_factory(secret_values(config))


class ServingApp:
    """ASGI app; ``load(version)`` gives a ``ServedModel``; ``probe()`` (run in a thread) or, when
    given, ``async_probe()`` (awaited on the loop) the version holding the alias now."""

    def __init__(
        self,
        schema: InputSchema,
        config: ServeConfig,
        load: Callable[[str | None], ServedModel],
        probe: Callable[[], str | None],
        prediction_logger: PredictionLogger | None = None,
        title: str = "airflow-mlops serving",
        async_probe: Any = None,
    ) -> None:
        config.check()
        self.schema = schema
        self.config = config
        self.model: ServedModel | None = None
        self.load_error: str | None = None  # redacted: for authenticated answers and the log only
        self.poll_error: str | None = None  # likewise, the last failed registry poll
        self.not_ready: str | None = STARTING  # one of NOT_READY_REASONS while no model serves
        self.load_failures = 0
        self.poll_failures = 0
        self._secrets = secret_values(config)
        self.prediction_logger = prediction_logger
        self._load = load
        self._probe = probe
        self._async_probe = async_probe
        self._tokens = [t.encode() for t in config.tokens]
        self._failed: tuple[str, float] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._openapi = _encode(openapi_document(schema, title, "1"))
        self.responses: Counter[int] = Counter()
        self.predictions = 0
        self.swaps = 0
        self.batches = 0
        self._batch: list[tuple[ServedModel, ModelInputs, asyncio.Future[Any]]] = []
        self._batch_scheduled = False
        self._routes: dict[tuple[str, str], Callable[[Scope, Receive], Awaitable[tuple[int, bytes, list[Any]]]]] = {
            ("POST", "/v1/predict"): self._predict,
            ("POST", "/invocations"): self._predict,
            ("GET", "/v1/model"): self._describe,
            ("GET", "/health/live"): self._live,
            ("GET", "/health/ready"): self._ready,
            ("GET", "/metrics"): self._metrics,
            ("GET", "/openapi.json"): self._openapi_json,
        }
        for path in ("/health/live", "/health/ready"):
            self._routes[("HEAD", path)] = _headless(self._routes[("GET", path)])
        self._open = {"/health/live", "/health/ready", "/openapi.json"}
        allowed: dict[str, list[str]] = {}
        for method, path in self._routes:
            allowed.setdefault(path, []).append(method)
        self._allow = {path: ", ".join(sorted(methods)).encode() for path, methods in allowed.items()}

    # -- model lifecycle --------------------------------------------------------------

    async def refresh(self) -> bool:
        """Swap to the champion if the alias moved; True when a new model now serves."""
        try:
            if self._async_probe is not None:
                version = await self._async_probe()
            else:
                version = await asyncio.to_thread(self._probe)
        except Exception as exc:  # registry unreachable: keep serving what we have
            self.poll_failures += 1
            self.poll_error = describe_error(exc, secrets=self._secrets)
            if self.model is None:
                self.not_ready = REGISTRY_UNREACHABLE
            logger.warning("cannot ask the registry for the champion: %s", self.poll_error)
            return False
        self.poll_error = None
        current = self.model.version if self.model else None
        if version is None:
            self.not_ready = NO_CHAMPION
            if self.model is not None:  # the alias was removed (e.g. a first champion failed its deploy)
                logger.warning("the champion alias of %s was removed: no longer serving v%s", self.model.name, current)
                self.model, self.load_error = None, "the champion alias was removed"
                return True
            return False
        if version == current:
            # The alias is back on the version being served (e.g. after a candidate failed to load):
            # the earlier failure is history, not the state of this server.
            self.load_error, self._failed = None, None
            return False
        if (
            self._failed
            and self._failed[0] == version
            and time.monotonic() - self._failed[1] < RETRY_FAILED_VERSION_SECONDS
        ):
            return False
        try:
            model = await asyncio.to_thread(self._load, version)
        except Exception as exc:
            self._failed = (version, time.monotonic())
            self.load_failures += 1
            expected = isinstance(exc, ModelLoadError)  # its message is ours: no type name needed
            detail = redact_secrets(str(exc), self._secrets) if expected else describe_error(exc, secrets=self._secrets)
            self.load_error = f"v{version}: {detail}"
            if self.model is None:
                self.not_ready = LOAD_FAILED
            level = logging.WARNING if expected else logging.ERROR
            logger.log(level, "not serving v%s (still serving v%s): %s", version, current, detail)
            return False
        self.model, self.load_error, self._failed, self.not_ready = model, None, None, None
        self.swaps += 1
        logger.info("now serving %s v%s (was v%s)", model.name, model.version, current)
        if self.swaps == 1 and self.config.freeze_gc:
            # What is alive after the first load (libraries, the model) stays alive: keep it out
            # of the cyclic collector's full passes, which otherwise pause requests for tens of
            # ms. Only once: a full collection at a later swap would stall the requests in
            # flight, and a replaced model is freed by reference counting anyway.
            gc.collect()
            gc.freeze()
        return True

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.config.poll_seconds)
            await self.refresh()

    async def startup(self) -> None:
        # The log writer thread holds the GIL in short bursts; a shorter switch interval
        # (default 5 ms) hands it back to the event loop sooner, which bounds tail latency.
        sys.setswitchinterval(0.001)
        await self.refresh()
        if self.prediction_logger is not None:
            self.prediction_logger.start()
        self._watcher = asyncio.create_task(self._watch())

    async def shutdown(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        if self._async_probe is not None and hasattr(self._async_probe, "close"):
            await self._async_probe.close()
        if self.prediction_logger is not None:
            try:
                await asyncio.to_thread(self.prediction_logger.close)
            except Exception:  # close() already retried and spilled what it could; never block the shutdown
                logger.exception("prediction log could not be closed cleanly")
            logger.info(
                "shut down: answered %d rows; prediction log: %d rows written in %d file(s), %d dropped",
                self.predictions,
                self.prediction_logger.written_rows,
                len(self.prediction_logger.files),
                self.prediction_logger.dropped_rows,
            )

    # -- ASGI -------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        handler = self._routes.get((scope["method"], scope["path"]))
        extra: list[Any] = []
        if handler is None:
            allow = self._allow.get(scope["path"])
            status, body = (405, b'{"detail":"method not allowed"}') if allow else (404, b'{"detail":"not found"}')
            extra = [(b"allow", allow)] if allow else []
        elif scope["path"] not in self._open and not self._authorized(scope):
            status, body = 401, b'{"detail":"missing or wrong bearer token"}'
            extra = [(b"www-authenticate", b"Bearer")]
        else:
            try:
                status, body, extra = await handler(scope, receive)
            except Exception:
                logger.exception("unexpected error on %s %s", scope["method"], scope["path"])
                status, body = 500, b'{"detail":"internal error; see the server log"}'
        if status == 0:  # the client went away before its body arrived: nothing to answer
            return
        self.responses[status] += 1
        headers = extra if any(key == b"content-type" for key, _ in extra) else _JSON + extra
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    failed = describe_error(exc, secrets=self._secrets)
                    await send({"type": "lifespan.startup.failed", "message": failed})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _authorized(self, scope: Scope) -> bool:
        if not self.config.require_token:
            return True
        for key, value in scope["headers"]:
            if key == b"authorization":
                scheme, _, token = value.partition(b" ")
                return scheme.lower() == b"bearer" and any(hmac.compare_digest(token.strip(), t) for t in self._tokens)
        return False

    async def _body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The request body; None when it exceeds ``max_body_bytes``; raises on a disconnect.

        A declared ``Content-Length`` over the limit is refused before a byte is read; the
        bytes read are counted as they arrive, so no more than the limit is ever held.
        """
        for key, value in scope["headers"]:
            if key == b"content-length":
                if value.isdigit() and int(value) > self.config.max_body_bytes:
                    return None
                break
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.config.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _inputs(self, body: bytes) -> ModelInputs:
        """``parse_body``, in a decoding thread for bodies over ``OFFLOAD_BODY_BYTES``.

        A small body is decoded on the loop (a thread hop would cost more than the decode);
        a large one in one of ``DECODE_THREADS`` threads, so the loop keeps answering (health
        checks included) and at most that many large trees are alive at once.
        """
        if len(body) <= OFFLOAD_BODY_BYTES:
            return parse_body(body, self.schema)
        return await asyncio.get_running_loop().run_in_executor(_decode_pool(), parse_body, body, self.schema)

    # -- handlers ---------------------------------------------------------------------

    async def _predict(self, scope: Scope, receive: Receive) -> tuple[int, bytes, list[Any]]:
        request_id, client_id, refused = _request_ids(scope)
        echo = [(b"x-request-id", request_id.encode())]
        try:
            body = await self._body(scope, receive)
        except _ClientGone:
            return 0, b"", []
        # One read, once the body is in: the whole request uses this version, whatever swaps
        # meanwhile, and a slow upload started before a swap is answered by the new version.
        model = self.model
        if body is None:
            limit = self.config.max_body_bytes
            return 413, _encode({"detail": f"body over the limit of {limit} bytes ({limit / 2**20:g} MiB)"}), echo
        if model is None:
            why = self.not_ready or STARTING
            last = self.load_error or self.poll_error
            return 503, _encode({"detail": f"no model loaded yet ({why}{': ' + last if last else ''})"}), echo
        try:
            inputs = await self._inputs(body)
        except PayloadError as exc:
            return 422, _encode({"detail": exc.errors, "request_id": request_id}), echo
        predictions, scores, probabilities = await self._infer(model, inputs)
        if self.prediction_logger is not None:
            self.prediction_logger.append(
                request_id, model.version, inputs.features, predictions, scores, inputs.ids,
                probabilities=probabilities, classes=model.class_labels, client_request_id=client_id,
            )  # fmt: skip
        self.predictions += inputs.rows
        answer: dict[str, Any] = {"request_id": request_id}
        if client_id is not None:
            answer["client_request_id"] = client_id
        elif refused:
            answer["client_request_id_error"] = REFUSED_REQUEST_ID
        answer |= {
            "model_name": model.name,
            "model_version": model.version,
            "predictions": predictions.tolist(),
        }
        if scores is not None:
            answer["scores"] = scores.tolist()
        if probabilities is not None:
            keys = model.class_labels or tuple(map(str, range(probabilities.shape[1])))
            answer["probabilities"] = [dict(zip(keys, row, strict=True)) for row in probabilities.tolist()]
        return 200, _encode(answer), echo

    async def _infer(self, model: ServedModel, inputs: ModelInputs) -> Prediction:
        """Predict, batched with the requests that reached this point in the same loop iteration.

        Requests that arrive together (the event loop read them in one pass) share one ONNX
        Runtime call, whose fixed cost (~100 us here) dominates small requests. Nothing waits
        for a batch to fill: the batch runs as soon as the requests already ready have
        joined it, so a lone request pays one extra loop turn.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._batch.append((model, inputs, future))
        if not self._batch_scheduled:
            self._batch_scheduled = True
            asyncio.get_running_loop().call_soon(self._run_batch)
        result: Prediction = await future
        return result

    def _run_batch(self) -> None:
        batch, self._batch, self._batch_scheduled = self._batch, [], False
        groups: dict[int, list[tuple[ServedModel, ModelInputs, asyncio.Future[Any]]]] = {}
        for item in batch:
            groups.setdefault(id(item[0]), []).append(item)  # a swap may split a batch between versions
        for items in groups.values():
            self.batches += 1
            model = items[0][0]
            if len(items) > 1:
                feeds = {name: np.concatenate([i[1].feeds[name] for i in items]) for name in items[0][1].feeds}
                try:
                    outputs = model.predict(feeds)
                except Exception:  # one bad request must not fail the others: run each alone
                    logger.warning("batched prediction failed; predicting each request alone", exc_info=True)
                else:
                    start = 0
                    for _, inputs, future in items:
                        stop = start + inputs.rows
                        _settle(future, tuple(None if o is None else o[start:stop] for o in outputs))
                        start = stop
                    continue
            for _, inputs, future in items:
                try:
                    _settle(future, model.predict(inputs.feeds))
                except Exception as exc:
                    if not future.done():
                        future.set_exception(exc)

    async def _describe(self, scope: Scope, receive: Receive) -> tuple[int, bytes, list[Any]]:
        if self.model is None:
            why = {"detail": f"no model loaded yet ({self.not_ready or STARTING})"}
            return 503, _encode({**why, "last_load_error": self.load_error, "last_poll_error": self.poll_error}), []
        described = {**self.model.describe(), "required_fields": list(self.schema.required)}
        return 200, _encode({**described, "last_load_error": self.load_error, "last_poll_error": self.poll_error}), []

    async def _live(self, scope: Scope, receive: Receive) -> tuple[int, bytes, list[Any]]:
        return 200, b'{"status":"alive"}', []

    async def _ready(self, scope: Scope, receive: Receive) -> tuple[int, bytes, list[Any]]:
        model = self.model
        if model is None:  # unauthenticated: the reason class only, never an error's text
            return 503, _encode({"status": "not ready", "reason": self.not_ready or STARTING}), []
        return 200, _encode({"status": "ready", "model_name": model.name, "model_version": model.version}), []

    async def _openapi_json(self, scope: Scope, receive: Receive) -> tuple[int, bytes, list[Any]]:
        return 200, self._openapi, []

    async def _metrics(self, scope: Scope, receive: Receive) -> tuple[int, bytes, list[Any]]:
        lines = ["# TYPE airflow_mlops_serving_responses_total counter"]
        lines += [
            f'airflow_mlops_serving_responses_total{{status="{s}"}} {n}' for s, n in sorted(self.responses.items())
        ]
        lines += [
            "# TYPE airflow_mlops_serving_predictions_total counter",
            f"airflow_mlops_serving_predictions_total {self.predictions}",
            "# TYPE airflow_mlops_serving_model_swaps_total counter",
            f"airflow_mlops_serving_model_swaps_total {self.swaps}",
            "# TYPE airflow_mlops_serving_model_runs_total counter",
            f"airflow_mlops_serving_model_runs_total {self.batches}",
            "# TYPE airflow_mlops_serving_model_load_failures_total counter",
            f"airflow_mlops_serving_model_load_failures_total {self.load_failures}",
            "# TYPE airflow_mlops_serving_registry_poll_failures_total counter",
            f"airflow_mlops_serving_registry_poll_failures_total {self.poll_failures}",
            "# TYPE airflow_mlops_serving_connections_closed_total counter",
            *(f'airflow_mlops_serving_connections_closed_total{{limit="{k}"}} {n}'
              for k, n in sorted(closed_connections.items())),
        ]  # fmt: skip
        if self.model is not None:
            lines += [
                "# TYPE airflow_mlops_serving_model_info gauge",
                f'airflow_mlops_serving_model_info{{model_name="{self.model.name}",'
                f'model_version="{self.model.version}"}} 1',
            ]
        log = self.prediction_logger
        if log is not None:
            lines += [
                "# TYPE airflow_mlops_prediction_log_rows_written_total counter",
                f"airflow_mlops_prediction_log_rows_written_total {log.written_rows}",
                "# TYPE airflow_mlops_prediction_log_rows_pending gauge",
                f"airflow_mlops_prediction_log_rows_pending {log.pending_rows}",
                "# TYPE airflow_mlops_prediction_log_rows_dropped_total counter",
                f"airflow_mlops_prediction_log_rows_dropped_total {log.dropped_rows}",
            ]
        return 200, ("\n".join(lines) + "\n").encode(), [(b"content-type", b"text/plain; version=0.0.4")]


class _ClientGone(Exception):
    """The client disconnected before sending its whole body."""


@functools.cache
def _decode_pool() -> concurrent.futures.ThreadPoolExecutor:
    """The threads that decode large bodies (made at the first one; idle threads cost nothing)."""
    return concurrent.futures.ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="decode-body")


def _headless(handler: Callable[[Scope, Receive], Awaitable[tuple[int, bytes, list[Any]]]]) -> Any:
    """``handler`` for HEAD: its status and headers, no body."""

    async def head(scope: Scope, receive: Receive) -> tuple[int, bytes, list[Any]]:
        status, _, extra = await handler(scope, receive)
        return status, b"", extra

    return head


def _settle(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():  # the client may have gone away and its task been cancelled
        future.set_result(result)


# Request ids the server makes: a random prefix per process (a forked child draws its own) and a
# counter, unique without a system call per request. The log's request_id (what delayed labels
# join by) is always one of them, so no client can make its rows share a key with another's.
_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count(1)


def _new_id_prefix() -> None:
    global _ID_PREFIX, _ID_COUNTER
    _ID_PREFIX, _ID_COUNTER = uuid.uuid4().hex[:16], itertools.count(1)


os.register_at_fork(after_in_child=_new_id_prefix)
_ID_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"
MAX_REQUEST_ID_CHARS = 128
REFUSED_REQUEST_ID = (
    f"X-Request-ID ignored: it must be 1-{MAX_REQUEST_ID_CHARS} characters of A-Z a-z 0-9 . _ : -; "
    "request_id is the server's id"
)


def _request_ids(scope: Scope) -> tuple[str, str | None, bool]:
    """(the server's request id, the client's valid ``X-Request-ID`` or None, whether one was refused)."""
    server_id = f"{_ID_PREFIX}-{next(_ID_COUNTER):x}"
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            if 0 < len(value) <= MAX_REQUEST_ID_CHARS and not value.translate(None, _ID_CHARS):
                return server_id, value.decode("ascii"), False
            return server_id, None, True
    return server_id, None, False


def build_app(config: ServeConfig) -> ServingApp:
    """The app for ``config``: the champion from the registry, predictions logged per the config."""
    from airflow_mlops import layout as settings
    from airflow_mlops.core.registry.client import Registry
    from airflow_mlops.serving.model import HttpAliasProbe, champion_version, load_version
    from airflow_mlops.spec import load_spec

    spec = load_spec(config.spec_path)
    schema = InputSchema.from_spec(spec, max_rows=config.max_rows)
    prediction_logger = None
    if config.log_predictions:
        prediction_logger = PredictionLogger(
            settings.prediction_log_dir(spec.name),
            spec.registered_model_name,
            spec.data.id_column,
            list(schema.model_numeric),
            list(schema.categorical),
            flush_rows=config.log_flush_rows,
            flush_seconds=config.log_flush_seconds,
            client_request_ids=True,
        )
    name = spec.registered_model_name
    over_http = config.tracking_uri.startswith(("http://", "https://"))
    registry = Registry(config.tracking_uri)
    return ServingApp(
        schema,
        config,
        load=lambda version: load_version(registry, spec, schema, version, config.onnx_threads),
        probe=lambda: champion_version(registry, name),
        async_probe=HttpAliasProbe(config.tracking_uri, name) if over_http else None,
        prediction_logger=prediction_logger,
        title=f"airflow-mlops serving: {spec.name} ({spec.registered_model_name})",
    )


def app_from_environment() -> ServingApp:
    """Factory uvicorn calls in each worker (``--factory``)."""
    config = ServeConfig.from_env()
    configure_logging(config)
    return build_app(config)
