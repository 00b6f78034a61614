"""The serving app's part of ``rollout``: the shadowed challenger and the baking canary, in one place.

The app (``serving.app``) calls four things: ``predict`` on the request path (which model answers,
its figures, the baseline's answer when a baking champion fails), ``offer`` after the answer is
made (shadow, off the request path), ``swapping``/``refuses`` when the champion alias moves, and
``refresh_challenger`` at every alias poll. ``serving.shadow`` and ``serving.canary`` hold the
mechanics; this module wires them to the app's loop and its /metrics.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from airflow_mlops.core.operations.prediction_log import PredictionLogger
from airflow_mlops.core.redaction import describe_error
from airflow_mlops.core.registry.client import CHALLENGER_ALIAS, HISTORY_TAG, Registry, is_not_found
from airflow_mlops.serving.batching import ModelRunBatcher
from airflow_mlops.serving.canary import Canary
from airflow_mlops.serving.config import ServeConfig
from airflow_mlops.serving.model import Prediction, ServedModel
from airflow_mlops.serving.payload import InputSchema, ModelInputs
from airflow_mlops.serving.registry_rest import RestRegistry, serves_over_rest
from airflow_mlops.serving.shadow import ShadowScorer
from airflow_mlops.spec import PipelineSpec
from airflow_mlops.spec.prediction_log import SHADOW_SOURCE

PENDING_TAG = "promotion_pending"  # core.registry.promotion's (not imported here: it would bring the MLflow client)

logger = logging.getLogger("airflow_mlops.serving")

RETRY_FAILED_CHALLENGER_SECONDS = 60.0


class Rollout:
    """Shadow (``shadow``) and canary (``canary``) of one serving process; either may be None.

    :param load: loads a version (the app's loader).
    :param probe_challenger: the version holding the ``challenger`` alias now, or None (run in a thread).
    :param move_to: the promotion record that made a version champion (pending or in the history), or None.
    """

    def __init__(
        self,
        load: Callable[[str | None], ServedModel],
        shadow: ShadowScorer | None = None,
        canary: Canary | None = None,
        probe_challenger: Callable[[], str | None] | None = None,
        move_to: Callable[[str], dict[str, Any] | None] | None = None,
    ) -> None:
        self.shadow = shadow
        self.canary = canary
        self._load = load
        self._probe_challenger = probe_challenger
        self._move_to = move_to
        self._challenger_failed: tuple[str, float] | None = None
        self._watcher: asyncio.Task[None] | None = None
        # A rollback whose registry move failed (MLflow down, refused): retried, backing off, until done.
        self._pending: tuple[Any, ...] | None = None
        self._pending_tries = 0
        self._pending_next = 0.0

    # -- the request path -------------------------------------------------------------

    async def predict(
        self, batcher: ModelRunBatcher, champion: ServedModel, inputs: ModelInputs, client_id: str | None = None
    ) -> tuple[ServedModel, Prediction]:
        """(the model that answered, its prediction): the champion, or while it bakes the baseline for some
        requests and for those whose run failed on the champion."""
        canary = self.canary
        if canary is None:
            return champion, await batcher.predict(champion, inputs)
        model = canary.route(champion, client_id)
        arm = canary.arm(model)
        # Read once, before the run: a judgement that ends the bake meanwhile must not take the fallback away.
        candidate, baseline = canary.candidate, canary.baseline
        start = time.perf_counter()
        try:
            outputs = await batcher.predict(model, inputs)
        except Exception:
            if arm is None or model is not candidate or baseline is None:
                raise
            arm.failed()  # the caller gets the baseline's answer; the failure counts against the candidate
            return baseline, await batcher.predict(baseline, inputs)
        if arm is not None:
            arm.observe(time.perf_counter() - start, outputs[1] if outputs[1] is not None else outputs[0])
        return model, outputs

    def offer(self, champion: ServedModel, request_id: str, inputs: ModelInputs, client_id: str | None) -> None:
        if self.shadow is not None:
            self.shadow.offer(champion, request_id, inputs, client_id)

    # -- alias moves ------------------------------------------------------------------

    def refuses(self, version: str) -> bool:
        """Whether ``version`` must not be loaded: the canary rolled it back (the alias is on its way back)."""
        return self.canary is not None and version in self.canary.rolled_back

    def settled(self) -> None:
        """The registry's alias is on the version this process serves: once no rollback is pending,
        a version the canary rolled back may bake anew if someone promotes it again."""
        if self.canary is not None and self._pending is None:
            self.canary.rolled_back.clear()

    def loaded(self, version: str) -> ServedModel | None:
        """The baseline when the alias went back to it while a bake ran (no reload needed), else None."""
        canary = self.canary
        if canary is not None and canary.baseline is not None and canary.baseline.version == version:
            return canary.baseline
        return None

    async def swapping(self, previous: ServedModel | None, model: ServedModel) -> None:
        """The champion becomes ``model`` (was ``previous``) right after this: bake it when a promotion put it
        there. Called before the app's swap, so no request reaches ``model`` outside the bake."""
        canary = self.canary
        if canary is None:
            return
        before = canary.current  # the outgoing champion's figures: the baseline's start
        canary.stop(model)
        if previous is None or previous.version == model.version:
            return
        try:
            record = await asyncio.to_thread(self._move_to, model.version) if self._move_to else None
        except Exception as exc:  # the history cannot be read: judge nothing rather than guess
            logger.warning("canary: not baking v%s, the promotion history is unreadable: %s", model.version,
                           describe_error(exc))  # fmt: skip
            return
        if record is not None and record.get("rollback"):
            logger.info("canary: v%s is champion again by a rollback: not baked", model.version)
            return
        canary.start(previous, model, str(record.get("id") or "manual") if record is not None else "manual", before)

    async def refresh_challenger(self, champion: ServedModel | None) -> None:
        """Load the version the ``challenger`` alias names (or drop it): what the shadow scores."""
        shadow = self.shadow
        if shadow is None or self._probe_challenger is None:
            return
        try:
            version = await asyncio.to_thread(self._probe_challenger)
        except Exception as exc:
            logger.warning("cannot ask the registry for the challenger: %s", describe_error(exc))
            return
        if version is None or (champion is not None and version == champion.version):
            if shadow.model is not None:
                logger.info("shadow: no challenger besides the champion any more (was v%s)", shadow.model.version)
            shadow.model = None
            return
        if shadow.model is not None and shadow.model.version == version:
            return
        failed = self._challenger_failed
        if failed and failed[0] == version and time.monotonic() - failed[1] < RETRY_FAILED_CHALLENGER_SECONDS:
            return
        try:
            shadow.model = await asyncio.to_thread(self._load, version)
        except Exception as exc:
            self._challenger_failed = (version, time.monotonic())
            logger.warning("shadow: challenger v%s not loaded: %s", version, describe_error(exc))
            return
        logger.info("shadow: challenger v%s scores %g of requests", version, shadow.share)

    # -- lifecycle --------------------------------------------------------------------

    def start(self, app: Any) -> None:
        if self.shadow is not None:
            self.shadow.start()
        if self.canary is not None:
            self._watcher = asyncio.create_task(self._watch(app))

    async def _watch(self, app: Any) -> None:
        canary = self.canary
        assert canary is not None
        while True:
            await asyncio.sleep(canary.rule.poll_seconds)
            try:
                await self.judge(app)
            except Exception:  # the judgement must never stop: log and judge again at the next poll
                logger.exception("canary: judging failed")

    async def judge(self, app: Any) -> str | None:
        """Judge the bake once (what the watcher does every ``poll_seconds``); the action taken, if any."""
        canary = self.canary
        if canary is not None and self._pending is not None:
            return await self._retry_rollback(canary)
        verdict = canary.judge() if canary is not None else None
        if canary is None or verdict is None or verdict.action is None:
            return None
        bad, baseline, move = canary.candidate, canary.baseline, canary.move
        assert bad is not None and baseline is not None
        if verdict.action == "baked":
            logger.info("canary: %s", verdict.reason)
            canary.stop(bad)
            return "baked"
        canary.rolled_back.add(bad.version)
        canary.fallback = baseline
        canary.rollbacks += 1
        app.model = baseline  # at once: every request from now on gets the baseline's answer
        canary.stop(baseline)
        logger.warning("canary: rolling back to v%s: %s", baseline.version, verdict.reason)
        pending = (bad.name, bad.version, baseline.version, move, verdict)
        if not await asyncio.to_thread(canary.roll_back_alias, *pending):
            # This process already answers with the baseline; the registry must follow, or batch scoring
            # and the other replicas keep the bad version: try again until the move is made.
            self._pending, self._pending_tries = pending, 0
            self._pending_next = time.monotonic() + canary.rule.poll_seconds
        return "rollback"

    async def _retry_rollback(self, canary: Canary) -> str | None:
        """Try the pending registry move again (every poll at first, then backing off to 10 minutes)."""
        assert self._pending is not None
        if time.monotonic() < self._pending_next:
            return None
        if await asyncio.to_thread(canary.roll_back_alias, *self._pending):
            self._pending = None
            return "rollback"
        self._pending_tries += 1
        delay = min(canary.rule.poll_seconds * 2**self._pending_tries, 600.0)
        self._pending_next = time.monotonic() + delay
        logger.error("canary: the registry still names v%s champion; next try in %.0f s", self._pending[1], delay)
        return None

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        if self.shadow is not None:
            await asyncio.to_thread(self.shadow.close)

    def metrics_lines(self) -> list[str]:
        lines: list[str] = []
        shadow, canary = self.shadow, self.canary
        if shadow is not None:
            lines += [
                "# TYPE airflow_mlops_shadow_requests_total counter",
                f'airflow_mlops_shadow_requests_total{{outcome="scored"}} {shadow.scored_requests}',
                f'airflow_mlops_shadow_requests_total{{outcome="dropped"}} {shadow.dropped_requests}',
                f'airflow_mlops_shadow_requests_total{{outcome="failed"}} {shadow.failed_requests}',
                "# TYPE airflow_mlops_shadow_rows_total counter",
                f"airflow_mlops_shadow_rows_total {shadow.scored_rows}",
                "# TYPE airflow_mlops_shadow_queue_requests gauge",
                f"airflow_mlops_shadow_queue_requests {shadow.queued}",
            ]
            if shadow.model is not None:
                lines += ["# TYPE airflow_mlops_shadow_model_info gauge",
                          f'airflow_mlops_shadow_model_info{{model_version="{shadow.model.version}"}} 1']  # fmt: skip
        if canary is not None:
            lines += [
                "# TYPE airflow_mlops_canary_bakes_total counter",
                f"airflow_mlops_canary_bakes_total {canary.bakes}",
                "# TYPE airflow_mlops_canary_rollbacks_total counter",
                f"airflow_mlops_canary_rollbacks_total {canary.rollbacks}",
                "# TYPE airflow_mlops_canary_baking gauge",
                f"airflow_mlops_canary_baking {int(canary.baking)}",
                "# TYPE airflow_mlops_canary_rollback_pending gauge",
                f"airflow_mlops_canary_rollback_pending {int(self._pending is not None)}",
            ]
        return lines


def build_rollout(
    spec: PipelineSpec,
    config: ServeConfig,
    registry: Registry,
    load: Callable[[str | None], ServedModel],
    champion_log: PredictionLogger | None,
    schema: InputSchema,
) -> Rollout | None:
    """The spec's ``rollout.shadow`` and ``rollout.canary`` for one serving process, or None when both are off.

    The shadow's rows go to a logger of their own (source ``shadow``) in the pipeline's prediction log,
    flushed like the champion's. The registry is read over REST when the tracking URI allows it.
    """
    rule = spec.rollout
    if not rule.shadow.enabled and not rule.canary.enabled:
        return None
    name = spec.registered_model_name
    over_rest = serves_over_rest(config.tracking_uri)
    shadow = None
    if rule.shadow.enabled:
        shadow_log = None
        if champion_log is not None:
            shadow_log = PredictionLogger(
                champion_log.folder, name, spec.data.id_column, list(schema.model_numeric), list(schema.categorical),
                source=SHADOW_SOURCE, flush_rows=champion_log.flush_rows, flush_seconds=champion_log.flush_seconds,
                client_request_ids=True,
            )  # fmt: skip
        shadow = ShadowScorer(rule.shadow.share, rule.shadow.queue_requests, shadow_log)
    canary = Canary(rule.canary, config.spec_path, config.tracking_uri) if rule.canary.enabled else None

    def probe_challenger() -> str | None:
        if over_rest:
            rest = RestRegistry(config.tracking_uri)
            try:
                found = rest.alias(name, CHALLENGER_ALIAS)
            finally:
                rest.close()
            return None if found is None else found.version
        return _client_alias(registry, name, CHALLENGER_ALIAS)

    def move_to(version: str) -> dict[str, Any] | None:
        if over_rest:
            rest = RestRegistry(config.tracking_uri)
            try:
                tags = rest.model_tags(name)
            finally:
                rest.close()
        else:
            tags = dict(registry.client.get_registered_model(name).tags)
        return record_of_move(tags, version)

    return Rollout(load, shadow, canary, probe_challenger, move_to)


def record_of_move(tags: dict[str, str], version: str) -> dict[str, Any] | None:
    """The record of the move that made ``version`` champion, from the registered model's tags: the pending
    record (a move being written) or the newest history record to it; None when there is none."""
    pending = json.loads(tags.get(PENDING_TAG) or "null")
    if isinstance(pending, dict) and str(pending.get("to_version")) == str(version):
        return pending
    history = json.loads(tags.get(HISTORY_TAG) or "[]")
    return next((r for r in reversed(history) if str(r.get("to_version")) == str(version)), None)


def _client_alias(registry: Registry, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(registry.client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if is_not_found(str(getattr(exc, "error_code", "")), str(exc)):
            return None
        raise
