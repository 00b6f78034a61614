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

Around it: ``serving.config`` (settings, tokens, logging), ``serving.bodies`` (reading and
decoding bodies), ``serving.batching`` (one model run for requests that arrive together),
``serving.request_ids``, ``serving.metrics``; the model and its loading in ``serving.model``; the spec's
``rollout`` (a shadowed challenger, a baking canary) in ``serving.rollout``.

No framework on purpose: the hot path (decode, check, predict, encode, log) costs tens
of microseconds more than the model itself; see docs/serving.md for figures.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from airflow_mlops.core.operations.prediction_log import PredictionLogger
from airflow_mlops.core.redaction import describe_error, redact_secrets
from airflow_mlops.serving import bodies, metrics
from airflow_mlops.serving.batching import ModelRunBatcher
from airflow_mlops.serving.config import ServeConfig, configure_logging, keep_pandas_out_of_pyarrow, secret_values
from airflow_mlops.serving.model import ModelLoadError, ServedModel
from airflow_mlops.serving.openapi import openapi_document
from airflow_mlops.serving.payload import InputSchema, PayloadError
from airflow_mlops.serving.registry_rest import serves_over_rest
from airflow_mlops.serving.request_ids import REFUSED_REQUEST_ID, request_ids
from airflow_mlops.serving.rollout import Rollout, build_rollout

logger = logging.getLogger("airflow_mlops.serving")

RETRY_FAILED_VERSION_SECONDS = 60.0
# Why no model serves, as unauthenticated endpoints say it (no exception text, no URL).
STARTING, REGISTRY_UNREACHABLE, NO_CHAMPION, LOAD_FAILED = (
    "starting", "registry unreachable", "no champion", "model failed to load"
)  # fmt: skip
NOT_READY_REASONS = (STARTING, REGISTRY_UNREACHABLE, NO_CHAMPION, LOAD_FAILED)
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
_encode = msgspec.json.Encoder().encode
_JSON = [(b"content-type", b"application/json")]


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
        rollout: Rollout | None = None,
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
        self.rollout = rollout  # rollout.shadow / rollout.canary of the spec (serving.rollout), or None
        self._tokens = [t.encode() for t in config.tokens]
        self._failed: tuple[str, float] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._openapi = _encode(openapi_document(schema, title, "1"))
        self.responses: Counter[int] = Counter()
        self.predictions = 0
        self.swaps = 0
        self._batcher = ModelRunBatcher()
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

    @property
    def batches(self) -> int:
        """ONNX Runtime calls so far (requests that arrive together share one, ``serving.batching``)."""
        return self._batcher.runs

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
            if self.rollout is not None:
                self.rollout.settled()
            return False
        if self.rollout is not None and self.rollout.refuses(version):
            return False  # the canary rolled it back here; the registry's alias is on its way back
        if (
            self._failed
            and self._failed[0] == version
            and time.monotonic() - self._failed[1] < RETRY_FAILED_VERSION_SECONDS
        ):
            return False
        try:
            reused = self.rollout.loaded(version) if self.rollout is not None else None
            model = reused if reused is not None else await asyncio.to_thread(self._load, version)
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
        if self.rollout is not None:  # before the swap: a new champion bakes from its first request on
            await self.rollout.swapping(self.model, model)
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
            if self.rollout is not None:
                await self.rollout.refresh_challenger(self.model)

    async def startup(self) -> None:
        # The log writer thread holds the GIL in short bursts; a shorter switch interval
        # (default 5 ms) hands it back to the event loop sooner, which bounds tail latency.
        sys.setswitchinterval(0.001)
        await self.refresh()
        if self.prediction_logger is not None:
            self.prediction_logger.start()
        if self.rollout is not None:
            self.rollout.start(self)
            await self.rollout.refresh_challenger(self.model)
        self._watcher = asyncio.create_task(self._watch())

    async def shutdown(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        if self._async_probe is not None and hasattr(self._async_probe, "close"):
            await self._async_probe.close()
        if self.rollout is not None:
            await self.rollout.close()
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

    # -- handlers ---------------------------------------------------------------------

    async def _predict(self, scope: Scope, receive: Receive) -> tuple[int, bytes, list[Any]]:
        request_id, client_id, refused = request_ids(scope)
        echo = [(b"x-request-id", request_id.encode())]
        try:
            body = await bodies.read_body(scope, receive, self.config.max_body_bytes)
        except bodies.ClientGone:
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
            inputs = await bodies.decode(body, self.schema)
        except PayloadError as exc:
            return 422, _encode({"detail": exc.errors, "request_id": request_id}), echo
        if self.rollout is None:
            predictions, scores, probabilities = await self._batcher.predict(model, inputs)
        else:  # while a champion bakes, the baseline may answer (serving.canary)
            model, (predictions, scores, probabilities) = await self.rollout.predict(
                self._batcher, model, inputs, client_id
            )
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
        encoded = _encode(answer)
        if self.rollout is not None:  # the challenger scores it later, in its own thread (serving.shadow)
            self.rollout.offer(model, request_id, inputs, client_id)
        return 200, encoded, echo

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
        return 200, metrics.metrics_text(self), [(b"content-type", metrics.CONTENT_TYPE)]


def _headless(handler: Callable[[Scope, Receive], Awaitable[tuple[int, bytes, list[Any]]]]) -> Any:
    """``handler`` for HEAD: its status and headers, no body."""

    async def head(scope: Scope, receive: Receive) -> tuple[int, bytes, list[Any]]:
        status, _, extra = await handler(scope, receive)
        return status, b"", extra

    return head


def build_app(config: ServeConfig) -> ServingApp:
    """The app for ``config``: the champion from the registry, predictions logged per the config."""
    from airflow_mlops import layout
    from airflow_mlops.core.registry.client import Registry
    from airflow_mlops.serving.model import champion_version, load_version
    from airflow_mlops.serving.registry_rest import HttpAliasProbe
    from airflow_mlops.spec import load_spec

    spec = load_spec(config.spec_path)
    schema = InputSchema.from_spec(spec, max_rows=config.max_rows)
    prediction_logger = None
    if config.log_predictions:
        prediction_logger = PredictionLogger(
            layout.prediction_log_dir(spec.name),
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

    def load(version: str | None) -> ServedModel:
        return load_version(registry, spec, schema, version, config.onnx_threads)

    return ServingApp(
        schema,
        config,
        load=load,
        probe=lambda: champion_version(registry, name),
        async_probe=HttpAliasProbe(config.tracking_uri, name) if over_http else None,
        prediction_logger=prediction_logger,
        title=f"airflow-mlops serving: {spec.name} ({spec.registered_model_name})",
        rollout=build_rollout(spec, config, registry, load, prediction_logger, schema),
    )


def app_from_environment() -> ServingApp:
    """Factory uvicorn calls in each worker (``--factory``)."""
    config = ServeConfig.from_env()
    configure_logging(config)
    if serves_over_rest(config.tracking_uri):  # else MLflow's client brings pandas anyway
        keep_pandas_out_of_pyarrow()
    return build_app(config)
