"""The evaluation's slices watched in operation: per-slice metrics on the delayed labels, each
against the champion's own test value on that slice (``evaluation/slices.json`` of its run).

A model can hold its overall metric while one group of rows (a region, a plan) gets much worse:
the overall number hides it when the group is small. Each value of each ``evaluation.slices``
column is judged alone: ``promotion.metric`` on its labeled predictions (the same code as the
overall check, ``performance.labeled_metrics``), compared with the champion's test value on the
same slice. A slice decays when it has at least ``monitoring.min_slice_rows`` labeled rows and is
worse than its test value by more than ``monitoring.max_slice_metric_drop``. Values are named as
the evaluation names them: the logged category, ``(missing)`` for a missing one.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from airflow_mlops.core.contracts import SliceCheck, SliceRow
from airflow_mlops.spec import PipelineSpec

logger = logging.getLogger(__name__)

ARTIFACT = "evaluation/slices.json"
MAX_SLICE_VALUES = 50  # as the evaluation: the most frequent values of a column


def champion_slices(registry: Any, current: Any) -> dict[str, Any] | None:
    """The champion's per-slice test metrics (``evaluation/slices.json`` on its run), or None."""
    if not getattr(current, "run_id", None):
        return None
    try:
        return dict(registry.run_json(current.run_id, ARTIFACT))
    except Exception as exc:  # an older champion without the artifact: nothing to compare with
        logger.warning("no per-slice test metrics for v%s: %s", getattr(current, "version", "?"), exc)
        return None


def slice_values(column: Any) -> Any:
    """A logged slice column's values as the evaluation names them ("" or null: ``(missing)``)."""
    values = column.astype("object")
    return values.where(values.notna() & (values.astype(str) != ""), "(missing)").astype(str)


def _judge(
    spec: PipelineSpec, column: str, value: str, metrics: dict[str, float], rows: int, test: dict[str, Any] | None
) -> SliceRow:
    monitoring, metric = spec.monitoring, spec.promotion.metric
    now = metrics.get(metric)
    then = test.get(metric) if test else None
    drop = None
    if now is not None and then is not None:
        drop = float(then - now) if spec.promotion.higher_is_better else float(now - then)
    if rows < monitoring.min_slice_rows:
        decision, decayed = f"no decision: {rows} labeled row(s), fewer than {monitoring.min_slice_rows}", False
    elif test is None:
        decision, decayed = "no decision: the champion's test split had no rows of this slice", False
    elif drop is None or not np.isfinite(drop):
        where = "its labeled rows" if now is None else "its test rows"
        decision, decayed = f"no decision: {metric} is not available on {where}", False
    else:
        decayed = drop > monitoring.max_slice_metric_drop
        worse = f"{drop:.4f} worse than" if drop > 0 else "not worse than"
        decision = f"{metric} {now:.4f} is {worse} its test value {then:.4f}"
    return {
        "column": column,
        "value": value,
        "rows": rows,
        "metric_value": now,
        "test_value": float(then) if then is not None else None,
        "test_rows": int(test["rows"]) if test and "rows" in test else None,
        "drop": drop,
        "decayed": bool(decayed),
        "decision": decision,
    }


def assess_slices(spec: PipelineSpec, joined: Any, model: Any, tested: dict[str, Any] | None) -> SliceCheck | None:
    """Every ``evaluation.slices`` value's metric on the labeled predictions ``joined`` against
    ``tested`` (the champion's ``slices.json``); None without slices or labeled predictions."""
    from airflow_mlops.core.operations.performance import labeled_metrics

    if not spec.evaluation.slices or joined is None or not len(joined):
        return None
    monitoring = spec.monitoring
    rows: list[SliceRow] = []
    for column in spec.evaluation.slices:
        if column not in joined.columns or joined[column].isna().all():
            logger.warning("slice column %s is not in the labeled predictions' log", column)
            continue
        values = slice_values(joined[column])
        for value in values.value_counts().index[:MAX_SLICE_VALUES]:
            part = joined[(values == value).to_numpy()].reset_index(drop=True)
            metrics, labeled = labeled_metrics(part, spec, model)
            test = ((tested or {}).get(column) or {}).get(str(value))
            rows.append(_judge(spec, column, str(value), metrics, labeled, test))
    decayed = [f"{row['column']}={row['value']}" for row in rows if row["decayed"]]
    judged = sum(1 for row in rows if not row["decision"].startswith("no decision"))
    if tested is None:
        decision = "no decision: the champion has no per-slice test metrics (evaluation/slices.json)"
    elif decayed:
        decision = f"{len(decayed)} of {judged} judged slice(s) decayed: {', '.join(decayed)}"
    else:
        decision = f"no slice decayed ({judged} of {len(rows)} slice(s) had enough labeled rows to judge)"
    return {
        "metric": spec.promotion.metric,
        "higher_is_better": spec.promotion.higher_is_better,
        "max_slice_metric_drop": monitoring.max_slice_metric_drop,
        "min_slice_rows": monitoring.min_slice_rows,
        "retrain": monitoring.retrain_on_slice_decay,
        "decayed": bool(decayed),
        "decayed_slices": decayed,
        "judged": judged,
        "decision": decision,
        "slices": rows,
    }


def slice_metric_values(check: SliceCheck | None) -> dict[str, float]:
    """The check's numbers as MLflow metrics, ``slice.<column>.<value>.labeled_<metric>`` / ``.drop``
    / ``.labeled_rows`` (``metric_name`` makes awkward values legal), ``slice_decay`` and ``decayed_slices``."""
    from airflow_mlops.core.registry.client import metric_name

    if check is None:
        return {}
    out: dict[str, float] = {"slice_decay": float(check["decayed"]), "decayed_slices": len(check["decayed_slices"])}
    for row in check["slices"]:
        prefix = f"slice.{row['column']}.{row['value']}"
        out[metric_name(f"{prefix}.labeled_rows")] = row["rows"]
        if row["metric_value"] is not None:
            out[metric_name(f"{prefix}.labeled_{check['metric']}")] = row["metric_value"]
        if row["drop"] is not None and np.isfinite(row["drop"]):
            out[metric_name(f"{prefix}.drop")] = row["drop"]
    return out
