"""Moving the ``champion`` alias: promotion, rollback, and finishing a move a dead task left half done.

A move is several writes MLflow cannot make atomic: the alias, the record on the version
(``promotion`` tag) and the model's bounded ``promotion_history`` tag. So every move first
writes its record (id, from, to, at, by, why, and the run that asked) as the registered
model's ``promotion_pending`` tag, then moves the alias, then writes the record to the
version and to the history (not again when a record with its id is there), then deletes
the pending tag. A failure at any step raises: the task fails and its retry finishes it.

Whoever moves the alias next (the retried task, another run, a rollback, the deploy step)
first settles a pending record left behind: when the alias is on its ``to_version`` the
move happened and its record is written now; when it is not, the move never happened and
the pending record is dropped. The history is never silently short of a move, and a
retried task finds its own move there (``promote_once``, ``rollback(run=...)``).

The alias can also be moved where this module does not see it (MLflow's UI, its client).
``alias_drift`` tells when the alias and the history's newest record disagree, and every
move here first records such a move (``record_manual_move``: ``manual: true``, by
``MANUAL_BY``), so the history never contradicts the alias it leads to.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any, cast

from airflow_mlops.core.contracts import AliasDrift, MoveExtra, PromotionRecord
from airflow_mlops.core.errors import NothingToProcessError
from airflow_mlops.core.registry import integrity
from airflow_mlops.core.registry.client import CHAMPION_ALIAS, HISTORY_TAG, Registry, is_not_found

log = logging.getLogger(__name__)

PENDING_TAG = "promotion_pending"
MANUAL_BY = "mlflow-ui (outside airflow-mlops)"  # who a move recorded by ``record_manual_move`` was made by
# MLflow stores registered-model tag values in a 5000-character column on SQL backends.
HISTORY_MAX_CHARS = 4500


class RollbackError(RuntimeError):
    """The champion cannot be rolled back (no earlier champion, or the target is unusable)."""


class PromotionSuperseded(NothingToProcessError):
    """This run promoted before and must not move the alias again (a clear after a rollback)."""


def _capped(history: list[PromotionRecord]) -> str:
    """The newest records that fit in a registered-model tag value."""
    kept = list(history)
    text = json.dumps(kept)
    while len(kept) > 1 and len(text) > HISTORY_MAX_CHARS:
        kept.pop(0)
        text = json.dumps(kept)
    return text


def _version_of(model_version: Any | None) -> str | None:
    return None if model_version is None else str(model_version.version)


def _write_record(registry: Registry, name: str, record: PromotionRecord) -> None:
    """The record on its version and in the history; a record already there (same id) is not added twice."""
    mlflow_client = registry.client
    if record.get("to_version"):
        mlflow_client.set_model_version_tag(name, record["to_version"], "promotion", json.dumps(record))
    history = registry.promotion_history(name)
    if not any(r.get("id") == record["id"] for r in history):
        mlflow_client.set_registered_model_tag(name, HISTORY_TAG, _capped([*history, record]))


def pending_move(registry: Registry, name: str) -> PromotionRecord | None:
    """The move a task started and did not finish recording, or None."""
    from mlflow.exceptions import MlflowException

    try:
        raw = registry.client.get_registered_model(name).tags.get(PENDING_TAG)
    except MlflowException as exc:
        if is_not_found(str(getattr(exc, "error_code", "")), str(exc)):
            return None  # no such model yet: nothing was ever moved
        raise
    return cast(PromotionRecord, json.loads(raw)) if raw else None  # written by ``promote``


def settle_pending(registry: Registry, name: str) -> PromotionRecord | None:
    """Finish recording a move whose task died after writing its intent; return it if it happened.

    The alias on the pending ``to_version`` (None: no champion) means the alias moved: the
    record is written to the version and the history. Otherwise the move never happened
    (the task died before the alias moved) and the pending record is dropped.
    """
    pending = pending_move(registry, name)
    if pending is None:
        return None
    current = _version_of(registry.champion(name))
    happened = current == pending.get("to_version")
    if happened:
        log.warning("recording the move of %s v%s -> v%s that a task left half done (%s)", name,
                    pending.get("from_version"), pending.get("to_version"), pending.get("by"))  # fmt: skip
        _write_record(registry, name, pending)
    else:
        log.warning("dropping the unfinished move of %s to v%s by %s: the champion is v%s, the alias never moved",
                    name, pending.get("to_version"), pending.get("by"), current)  # fmt: skip
    registry.client.delete_registered_model_tag(name, PENDING_TAG)
    return pending if happened else None


def alias_drift(registry: Registry, name: str) -> AliasDrift | None:
    """Where the ``champion`` alias is, when that is not where the promotion history's newest record
    put it (a move made in MLflow's UI or with its client); None when they agree.

    A move in progress or left half done (the pending record names the alias's version) is no
    drift: ``settle_pending`` records it. MLflow does not time aliases: ``since`` is the newest
    record's ``at``, the alias moved some time after it. No such model: None.
    """
    from mlflow.exceptions import MlflowException

    try:
        model = registry.client.get_registered_model(name)
    except MlflowException as exc:
        if is_not_found(str(getattr(exc, "error_code", "")), str(exc)):
            return None
        raise
    alias = _version_of(registry.champion(name))
    raw_pending = model.tags.get(PENDING_TAG)
    if raw_pending and json.loads(raw_pending).get("to_version") == alias:
        return None
    history: list[PromotionRecord] = json.loads(model.tags.get(HISTORY_TAG, "[]"))
    last = history[-1] if history else None
    recorded = None if last is None or last.get("to_version") is None else str(last["to_version"])
    if alias == recorded:
        return None
    return {"alias_version": alias, "history_version": recorded, "since": last.get("at") if last else None}


def record_manual_move(registry: Registry, name: str) -> PromotionRecord | None:
    """Record the move ``alias_drift`` finds (``manual: true``, by ``MANUAL_BY``); return it, or None.

    Its id follows from the record before it and the alias's version, so two writers noticing
    the same move record it once.
    """
    drift = alias_drift(registry, name)
    if drift is None:
        return None
    history = registry.promotion_history(name)
    before = history[-1].get("id", "") if history else ""
    record: PromotionRecord = {
        "id": "manual-" + hashlib.sha256(f"{before}>{drift['alias_version']}".encode()).hexdigest()[:9],
        "from_version": drift["history_version"],
        "to_version": drift["alias_version"],
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "by": MANUAL_BY,
        "reason": "the champion alias was moved outside airflow-mlops (found by the next move; MLflow does not "
        "record when or by whom)",
        "manual": True,
        "moved_after": drift["since"],
    }
    log.warning("champion of %s is v%s but the history says v%s: recording the move made outside airflow-mlops",
                name, drift["alias_version"], drift["history_version"])  # fmt: skip
    _write_record(registry, name, record)
    return record


def promote(
    registry: Registry,
    name: str,
    version: str | None,
    reason: str,
    by: str,
    extra: MoveExtra | None = None,
    run: str | None = None,
) -> PromotionRecord:
    """Move ``champion`` to ``version`` (None: remove the alias) and record the move; return the record.

    The move itself, without checks: ``promote_once`` (the pipeline) and ``rollback`` check
    the target first. ``run`` names the Airflow run that asked, so its retry finds the record.
    Written in the order of the module docstring, so a crash anywhere is settled later.
    """
    settle_pending(registry, name)
    record_manual_move(registry, name)
    mlflow_client = registry.client
    record: PromotionRecord = {
        "id": uuid.uuid4().hex[:16],
        "from_version": _version_of(registry.champion(name)),
        "to_version": None if version is None else str(version),
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "by": by,
        "reason": reason[:1000],
    }
    if run:
        record["run"] = run
    record.update(extra or {})
    mlflow_client.set_registered_model_tag(name, PENDING_TAG, json.dumps(record))
    if version is None:
        mlflow_client.delete_registered_model_alias(name, CHAMPION_ALIAS)
    else:
        mlflow_client.set_registered_model_alias(name, CHAMPION_ALIAS, str(version))
    _write_record(registry, name, record)
    mlflow_client.delete_registered_model_tag(name, PENDING_TAG)
    return record


def _move_text(record: PromotionRecord) -> str:
    return (f"v{record.get('from_version')} -> v{record.get('to_version')} ({str(record.get('reason'))[:120]}, "
            f"by {record.get('by')} at {record.get('at')})")  # fmt: skip


def promote_once(
    registry: Registry,
    name: str,
    version: str,
    expected_champion: str | None,
    reason: str,
    by: str,
    run: str,
    preflight: Callable[[], None] | None = None,
) -> PromotionRecord:
    """Promote ``version`` for Airflow run ``run``, at most once, and only over ``expected_champion``.

    Safe to retry or clear: a move this run left half done is finished first. When the
    history holds this run's promotion and nothing moved since, that record is returned and
    nothing moves. When anything moved since (a rollback, another promotion), or the run
    promoted another version, ``PromotionSuperseded`` says so and nothing moves. Otherwise
    the champion must still be ``expected_champion`` (the one the candidate was compared
    with), the target must pass ``integrity.require_intact`` and ``preflight`` (if given).
    """
    settle_pending(registry, name)
    history = registry.promotion_history(name)
    mine = [i for i, r in enumerate(history) if r.get("run") == run and not r.get("rollback")]
    target = registry.client.get_model_version(name, version)
    tagged = json.loads(target.tags.get("promotion") or "{}")
    current = _version_of(registry.champion(name))
    if mine or (tagged.get("run") == run and not tagged.get("rollback")):
        earlier = history[mine[-1]] if mine else tagged
        later = history[mine[-1] + 1 :] if mine else None
        if later == [] and earlier.get("to_version") == version and current == version:
            log.info("run %s already promoted %s v%s: nothing to do", run, name, version)
            return earlier
        if later is None:
            since = "moves no longer in the bounded history"
        else:
            since = "; ".join(_move_text(r) for r in later) or "no move"
        raise PromotionSuperseded(
            f"run {run} already promoted '{name}' {_move_text(earlier)}; since then: {since}; the champion is "
            f"v{current}. A run promotes once: not moving the alias to v{version} (trigger a new run to promote)"
        )
    if current != expected_champion:
        raise RuntimeError(
            f"champion of '{name}' moved from {expected_champion} to {current} while this run was evaluating; "
            "not promoting. Re-run to compare against the new champion."
        )
    checked = integrity.require_intact(registry, target, "promote")
    if preflight is not None:
        preflight()
        now = _version_of(registry.champion(name))
        if now != expected_champion:  # the preflight takes seconds: check again right before the move
            raise RuntimeError(f"champion of '{name}' moved from {expected_champion} to {now} during the preflight")
    return promote(registry, name, version, reason, by, extra={"integrity": checked.summary()}, run=run)


def unservable_reasons(version: Any) -> list[str]:
    """Why a model version must not become champion again; empty when it may.

    It must have passed its gate (tag ``gate=passed``; a version registered by hand or whose
    gate never ran has no tag) and carry an ONNX graph that passed the parity check (tag
    ``onnx_uri``, set by ``register_candidate`` only then): the serving app loads that graph.
    """
    tags = dict(version.tags or {})
    reasons = []
    gate = tags.get("gate")
    if gate is None:
        reasons.append("it has no gate verdict (tag 'gate' missing: its promotion gate never ran)")
    elif gate != "passed":
        why = tags.get("gate_reasons")
        reasons.append(f"it failed its promotion gate ({why})" if why else f"its gate tag says '{gate}'")
    if not tags.get("onnx_uri"):
        detail = "its ONNX parity check failed" if tags.get("onnx_parity") == "failed" else "none was packaged"
        reasons.append(f"it has no parity-checked ONNX graph for serving (tag 'onnx_uri' missing: {detail})")
    return reasons


def last_move_to(history: list[PromotionRecord], version: str) -> PromotionRecord | None:
    """The newest recorded move that made ``version`` champion (a promotion or a rollback)."""
    return next((r for r in reversed(history) if str(r.get("to_version")) == str(version)), None)


def rollback(
    registry: Registry,
    name: str,
    by: str,
    reason: str,
    to_version: str | None = None,
    force: bool = False,
    run: str | None = None,
    extra: MoveExtra | None = None,
) -> PromotionRecord:
    """Move ``champion`` back: to ``to_version``, or to the version the last move replaced.

    Without ``to_version`` it undoes the newest recorded move to the current champion,
    whether a promotion or a rollback: after A -> B, a rollback restores A and a second one
    B again. The target must exist, must have passed its gate and must have a parity-checked
    ONNX graph (``unservable_reasons``), else ``RollbackError`` names the version and why;
    ``force=True`` restores it anyway, and the record says so (``forced: true``, the reasons
    in ``forced_past``, the reason starting with ``rollback (forced):``). Its artifacts must
    load and match their recorded digests (``integrity``): that cannot be forced. Every
    rollback is recorded in the promotion history like a promotion, with ``rollback: true``.

    ``run`` names the request (a task): a retry of it returns the rollback it already made
    instead of undoing it. Without ``run`` (the command line) each call is a new rollback.
    ``extra`` joins the record (the serving app's canary: ``automatic`` and its ``figures``).
    A move made outside airflow-mlops is recorded first (``record_manual_move``), so a rollback
    without ``to_version`` undoes that move.
    """
    settle_pending(registry, name)
    record_manual_move(registry, name)
    current = registry.champion(name)
    history = registry.promotion_history(name) if current is not None else []
    if run is not None:
        done = next((r for r in reversed(history) if r.get("run") == run and r.get("rollback")), None)
        if done is not None:
            log.info("rollback %s of %s was already made: %s", run, name, _move_text(done))
            return done
    if current is None:
        raise RollbackError(f"'{name}' has no champion to roll back")
    current_version = str(current.version)
    if to_version is None:
        last = last_move_to(history, current_version)
        if last is None or not last.get("from_version"):
            raise RollbackError(f"no earlier champion recorded for '{name}' v{current_version}; name one with --to")
        to_version = str(last["from_version"])
    if str(to_version) == current_version:
        raise RollbackError(f"v{to_version} is already the champion of '{name}'")
    try:
        target = registry.client.get_model_version(name, str(to_version))
    except Exception as exc:
        raise RollbackError(f"'{name}' has no version {to_version}: {exc}") from exc
    problems = unservable_reasons(target)
    if problems and not force:
        raise RollbackError(
            f"refusing to make '{name}' v{to_version} champion again: {'; '.join(problems)}. "
            "Force it with --force (operator: force=True) if you are sure"
        )
    try:
        checked = integrity.require_intact(registry, target, "roll back to")
    except integrity.IntegrityError as exc:
        raise RollbackError(str(exc)) from exc
    added: MoveExtra = {**(extra or {}), "rollback": True, "integrity": checked.summary()}
    if problems:
        log.warning("forced rollback of %s to v%s: %s", name, to_version, "; ".join(problems))
        added["forced"], added["forced_past"] = True, [p[:300] for p in problems]
    label = "rollback (forced)" if problems else "rollback"
    return promote(registry, name, str(to_version), reason=f"{label}: {reason}", by=by, extra=added, run=run)
