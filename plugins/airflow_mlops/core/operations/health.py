"""Is the model still in service? The monitoring DAG's health checks: silence, label lag, champion age.

Each check is one row of ``CHECKS``: its name, the ``monitoring`` field that turns it on (None:
off) and its judge, a pure function of what was observed (``Observations``) and the limit. The
health check task (``check_health``) observes, judges every enabled check, and lets
``core.operations.incidents`` open or close one incident per check (an alert when a condition
starts, a recovery when it clears; nothing while it holds).

- ``silence`` (``max_silence_hours``): no prediction logged for that long. The newest prediction
  is found walking the log's date partitions back from tomorrow (a few days past the limit),
  its time read from the newest file's Parquet footer (``logged_at`` statistics; the file's
  modification time when there are none). While nothing was ever logged, the clock starts at
  the champion's promotion: a fresh champion is not silent yet.
- ``label_lag`` (``max_label_lag_hours``): no delayed-label file arrived in ``lake/labels`` for that
  long (the newest file's modification time); while none ever arrived, since the promotion.
- ``champion_age`` (``max_champion_age_days``): the champion has held the alias that long (its
  newest move in the promotion history; the version's creation time when there is none).
- ``monitoring_late`` (``max_run_minutes``): a monitoring run has not succeeded that long after it
  was queued. Airflow's Deadline Alert opens it (``notifiers.health``, in the triggerer); the
  health check of a run whose drift check did not fail closes it.

Without a champion nothing is judged: nothing serves yet.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_mlops import layout
from airflow_mlops.core.contracts import HealthResult
from airflow_mlops.core.io import storage
from airflow_mlops.core.operations import incidents
from airflow_mlops.spec import PipelineSpec

LATE = "monitoring_late"


@dataclass(frozen=True)
class Observations:
    """What the health checks judge, observed once per run."""

    now: dt.datetime
    champion: str | None  # the champion's version; None: nothing to judge
    champion_since: dt.datetime | None  # its promotion (or creation) time
    last_prediction_at: dt.datetime | None  # None: none in the partitions scanned
    scanned_since: dt.datetime  # where the scan for predictions started
    last_label_at: dt.datetime | None  # None: no label file ever arrived


Finding = dict[str, Any]  # {"breached": bool, "summary": str, "since": iso time or None}


@dataclass(frozen=True)
class Check:
    """One health check: its name, the ``monitoring`` field holding its limit, the limit's unit, its judge."""

    name: str
    field: str
    seconds_per_unit: float
    judge: Callable[[Observations, float], Finding] | None  # None: opened from outside (the deadline)


def duration(seconds: float) -> str:
    """A length of time as a person says it: ``95 s``, ``12 min``, ``3.5 h``, ``41.2 days``."""
    if seconds < 120:
        return f"{max(seconds, 0):.0f} s"
    if seconds < 90 * 60:
        return f"{max(seconds, 0) / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _iso(when: dt.datetime | None) -> str | None:
    return None if when is None else when.astimezone(dt.UTC).isoformat(timespec="seconds")


def _silence(obs: Observations, hours: float) -> Finding:
    limit = hours * 3600
    last = obs.last_prediction_at
    if last is None and obs.champion_since is not None and obs.champion_since >= obs.scanned_since:
        quiet = (obs.now - obs.champion_since).total_seconds()  # a champion that never logged yet
        summary = f"no prediction logged in {duration(quiet)} since v{obs.champion} was promoted"
        return {"breached": quiet > limit, "summary": summary, "since": _iso(obs.champion_since)}
    if last is None:
        summary = f"no prediction logged since at least {_iso(obs.scanned_since)} (limit {duration(limit)})"
        return {"breached": True, "summary": summary, "since": None}
    quiet = (obs.now - last).total_seconds()
    summary = f"no prediction logged for {duration(quiet)} (the last at {_iso(last)}; limit {duration(limit)})"
    return {"breached": quiet > limit, "summary": summary, "since": _iso(last)}


def _label_lag(obs: Observations, hours: float) -> Finding:
    limit = hours * 3600
    start = obs.last_label_at or obs.champion_since
    if start is None:
        return {"breached": False, "summary": "no label expected yet", "since": None}
    waited = (obs.now - start).total_seconds()
    what = f"the last at {_iso(start)}" if obs.last_label_at else f"none since v{obs.champion} was promoted"
    summary = f"no delayed labels arrived for {duration(waited)} ({what}; limit {duration(limit)})"
    return {"breached": waited > limit, "summary": summary, "since": _iso(start)}


def _champion_age(obs: Observations, days: float) -> Finding:
    if obs.champion_since is None:
        return {"breached": False, "summary": "champion's promotion time unknown", "since": None}
    age = (obs.now - obs.champion_since).total_seconds()
    summary = (f"champion v{obs.champion} has served for {duration(age)} (promoted {_iso(obs.champion_since)}; "
               f"limit {duration(days * 86400)})")  # fmt: skip
    return {"breached": age > days * 86400, "summary": summary, "since": _iso(obs.champion_since)}


CHECKS: tuple[Check, ...] = (
    Check("silence", "max_silence_hours", 3600, _silence),
    Check("label_lag", "max_label_lag_hours", 3600, _label_lag),
    Check("champion_age", "max_champion_age_days", 86400, _champion_age),
    Check(LATE, "max_run_minutes", 60, None),
)


def enabled_checks(spec: PipelineSpec) -> dict[str, float]:
    """The checks the spec turns on, with their limits (in the field's unit)."""
    return {c.name: float(v) for c in CHECKS if (v := getattr(spec.monitoring, c.field)) is not None}


def judge(spec: PipelineSpec, obs: Observations) -> dict[str, Finding]:
    """Every enabled check's finding (none without a champion; none for the deadline's check)."""
    if obs.champion is None:
        return {}
    limits = enabled_checks(spec)
    return {c.name: c.judge(obs, limits[c.name]) for c in CHECKS if c.judge is not None and c.name in limits}


# -- observing -------------------------------------------------------------------------------------


def _footer_time(uri: str) -> dt.datetime | None:
    """The newest ``logged_at`` of a log file from its Parquet footer statistics (no rows read)."""
    import pyarrow.parquet as pq

    newest: dt.datetime | None = None
    with storage.local_copy(uri) as path:
        metadata = pq.ParquetFile(path).metadata
        names = [metadata.schema.column(i).name for i in range(metadata.num_columns)]
        if "logged_at" not in names:
            return None
        column = names.index("logged_at")
        for group in range(metadata.num_row_groups):
            stats = metadata.row_group(group).column(column).statistics
            value = stats.max if stats is not None and stats.has_min_max else None
            if isinstance(value, dt.datetime):
                value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
                newest = value if newest is None or value > newest else newest
    return newest


def last_prediction(pipeline: str, since: dt.date, today: dt.date) -> dt.datetime | None:
    """When the newest logged prediction was made, looking in the date partitions from tomorrow back
    to ``since`` (file names sort by time within a partition); None when there is none."""
    day = today + dt.timedelta(days=1)
    while day >= since:
        files = storage.list_files(layout.prediction_log_partition(pipeline, day), (".parquet",))
        if files:
            newest = files[-1]
            found = _footer_time(newest)
            return found or dt.datetime.fromtimestamp(storage.modified_at(newest), dt.UTC)
        day -= dt.timedelta(days=1)
    return None


def last_label(pipeline: str) -> dt.datetime | None:
    """When the newest delayed-label file arrived (its modification time); None when none did."""
    files = storage.list_files_recursive(layout.labels_dir(pipeline))
    if not files:
        return None
    return dt.datetime.fromtimestamp(max(storage.modified_at(uri) for uri in files), dt.UTC)


def champion_since(registry: Any, name: str, current: Any) -> dt.datetime | None:
    """When ``current`` became champion: its newest move in the promotion history, else its creation."""
    from airflow_mlops.core.registry.promotion import last_move_to

    record = last_move_to(registry.promotion_history(name), str(current.version))
    if record and record.get("at"):
        at = dt.datetime.fromisoformat(str(record["at"]).replace("Z", "+00:00"))
        return at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    created = getattr(current, "creation_timestamp", None)
    return dt.datetime.fromtimestamp(int(created) / 1000, dt.UTC) if created else None


def observe(spec: PipelineSpec, registry: Any, now: dt.datetime) -> Observations:
    """Champion, its promotion time, the newest prediction and the newest label, as of ``now``."""
    name = spec.registered_model_name
    current = registry.champion(name)
    limits = enabled_checks(spec)
    hours = limits.get("silence", 0.0)
    silence, lag = "silence" in limits, "label_lag" in limits
    scanned_since = dt.datetime.combine(now.date() - dt.timedelta(days=math.ceil(hours / 24) + 2), dt.time(),
                                        dt.UTC)  # fmt: skip
    return Observations(
        now=now,
        champion=None if current is None else str(current.version),
        champion_since=None if current is None else champion_since(registry, name, current),
        last_prediction_at=last_prediction(spec.name, scanned_since.date(), now.date()) if silence else None,
        scanned_since=scanned_since,
        last_label_at=last_label(spec.name) if lag else None,
    )


def check_health(
    spec: PipelineSpec, registry: Any, run_id: str, monitoring_ok: bool, now: dt.datetime | None = None
) -> tuple[HealthResult, list[str]]:
    """Judge the enabled checks, open and close incidents, write the state with the messages to
    send; return the result (without delivery yet) and the ids of the messages waiting.

    ``monitoring_ok``: this run's drift check did not fail, so an open ``monitoring_late``
    incident clears (the monitoring DAG works again).
    """
    now = now or dt.datetime.now(dt.UTC)
    limits = enabled_checks(spec)
    findings = judge(spec, observe(spec, registry, now)) if set(limits) - {LATE} else {}
    if LATE in limits and monitoring_ok:
        findings[LATE] = {"breached": False, "summary": "a monitoring run got through", "since": None}
    state = incidents.load(spec.name)
    opened, cleared = incidents.reconcile(state, findings, limits, spec.name, now, run_id)
    incidents.save(spec.name, state)
    result: HealthResult = {
        "pipeline": spec.name,
        "checked_at": now.isoformat(timespec="seconds"),
        "open": list(state["open"].values()),
        "opened": opened,
        "cleared": cleared,
        "findings": findings,
        "messages": [],
        "undelivered": [m["id"] for m in incidents.pending(state)],
    }
    return result, result["undelivered"]
