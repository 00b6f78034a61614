"""The offline replay: a gated candidate answers the rows the champion answered lately (``rollout.replay``).

The champion's own rows of the prediction log (``prediction_log.readers``: only its version,
never shadow rows) from the last ``lookback_days`` are predicted again by the candidate (its
scikit-learn model, on the logged model inputs). The report compares the two on exactly those
rows: agreement (share of equal predicted classes; for regression the correlation of the values),
the correlation, mean shift and PSI of the scores, and where delayed labels arrived
(``prediction_log.labels``) both models' metrics on the same labeled rows.

It is logged on the candidate's MLflow run (``replay_*`` metrics, ``replay/report.json``) and as
the version's ``replay`` tag; with a condition set (``min_agreement``, ``max_score_psi``,
``max_metric_drop``) a candidate that misses one is held: the gate result handed to the promote
step says ``promote: false`` with the replay's reason.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, TypedDict

import numpy as np

from airflow_mlops.core.contracts import GateResult
from airflow_mlops.core.operations import score_shift
from airflow_mlops.core.registry.client import CHALLENGER_ALIAS, Registry
from airflow_mlops.spec import PipelineSpec

log = logging.getLogger(__name__)

REPLAY_TAG = "replay"
REPORT_ARTIFACT = "replay/report.json"


class ReplayReport(TypedDict):
    """What the replay measured and decided (the ``replay`` tag, JSON)."""

    champion_version: str | None
    candidate_version: str
    rows: int
    agreement: float | None
    score_correlation: float | None
    score_mean_shift: float | None
    score_psi: float | None
    labeled_rows: int
    metric: str
    candidate_metric: float | None
    champion_metric: float | None
    metric_drop: float | None
    judged: bool
    passed: bool
    reasons: list[str]


def replay_figures(
    task: str,
    champion_predictions: np.ndarray,
    candidate_predictions: np.ndarray,
    champion_scores: np.ndarray | None,
    candidate_scores: np.ndarray | None,
) -> dict[str, float | None]:
    """Agreement, score correlation, mean shift and PSI of two models' outputs on the same rows (pure).

    Classification: agreement is the share of equal labels, the scores are the logged scores.
    Regression: the values are the scores, and agreement is their correlation.
    """
    if task == "regression" or champion_scores is None or candidate_scores is None:
        champion_scores = np.asarray(champion_predictions, dtype=np.float64)
        candidate_scores = np.asarray(candidate_predictions, dtype=np.float64)
    corr = score_shift.correlation(champion_scores, candidate_scores)
    agree = corr if task == "regression" else score_shift.agreement(champion_predictions, candidate_predictions)
    return {
        "agreement": agree,
        "score_correlation": corr,
        "score_mean_shift": score_shift.mean_shift(champion_scores, candidate_scores),
        "score_psi": score_shift.score_psi(champion_scores, candidate_scores),
    }


def judge(
    spec: PipelineSpec, figures: dict[str, Any], rows: int, labeled: int, drop: float | None
) -> tuple[bool, bool, list[str]]:
    """(judged, passed, reasons) of the replay's figures against ``rollout.replay`` (pure)."""
    rule = spec.rollout.replay
    if rows < rule.min_rows:
        return False, True, [f"replay not judged: {rows} logged row(s) of the champion, fewer than {rule.min_rows}"]
    reasons, passed = [], True
    agreement, psi = figures.get("agreement"), figures.get("score_psi")
    if rule.min_agreement is not None and (agreement is None or agreement < rule.min_agreement):
        passed = False
        shown = "undefined" if agreement is None else f"{agreement:.4f}"
        reasons.append(
            f"replay agreement {shown} on {rows} rows is below rollout.replay.min_agreement {rule.min_agreement:g}"
        )
    if rule.max_score_psi is not None and psi is not None and psi > rule.max_score_psi:
        passed = False
        reasons.append(f"replay score PSI {psi:.4f} is above rollout.replay.max_score_psi {rule.max_score_psi:g}")
    if rule.max_metric_drop is not None:
        metric = spec.promotion.metric
        if labeled < rule.min_labeled_rows:
            reasons.append(f"replay {metric} not compared: {labeled} labeled row(s), fewer than "
                           f"{rule.min_labeled_rows}")  # fmt: skip
        elif drop is not None and drop > rule.max_metric_drop:
            passed = False
            reasons.append(f"replay {metric} of the candidate is {drop:.4f} worse than the champion's on {labeled} "
                           f"labeled rows (rollout.replay.max_metric_drop {rule.max_metric_drop:g})")  # fmt: skip
    if passed:
        reasons.insert(0, f"replay passed on {rows} rows")
    return True, passed, reasons


def _logged_rows(spec: PipelineSpec, version: str, now: dt.datetime) -> Any:
    """The champion's newest ``max_rows`` logged rows (keys, model inputs, outputs) of the lookback."""
    import pandas as pd

    from airflow_mlops.core.operations.prediction_log.readers import prediction_log_files, read_log_file

    rule = spec.rollout.replay
    since = (now - dt.timedelta(days=rule.lookback_days)).date()
    columns = ["request_id", "row", "logged_at", *spec.data.features.all, "prediction", "score"]
    frames, rows = [], 0
    for uri in reversed(prediction_log_files(spec.name, since)):
        table = read_log_file(uri, columns, version)
        if table is None or table.num_rows == 0:
            continue
        frames.append(table.to_pandas())
        rows += table.num_rows
        if rows >= rule.max_rows:
            break
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames[::-1], ignore_index=True).tail(rule.max_rows).reset_index(drop=True)


def _candidate_outputs(model: Any, frame: Any, spec: PipelineSpec) -> tuple[np.ndarray, np.ndarray | None, Any]:
    """(predictions, scores, probability maps or None) of the candidate on the logged rows."""
    from airflow_mlops.core.model.training import feature_frame

    features = feature_frame(frame, spec)
    predictions = np.asarray(model.predict(features))
    if spec.model.task != "classification" or not hasattr(model, "predict_proba"):
        return predictions, None, None
    probabilities = np.asarray(model.predict_proba(features), dtype=np.float64)
    if probabilities.shape[1] == 2:
        return predictions, probabilities[:, 1], None
    labels = [str(c) for c in model.classes_]
    return predictions, probabilities.max(axis=1), [dict(zip(labels, row, strict=True)) for row in probabilities]


def _labeled_comparison(spec: PipelineSpec, champion: str, frame: Any, model: Any, candidate: tuple) -> dict[str, Any]:
    """Both models' metrics on the replayed rows whose delayed label arrived."""
    from airflow_mlops.core.operations.performance import labeled_metrics
    from airflow_mlops.core.operations.prediction_log.labels import labeled_predictions

    since = frame["logged_at"].min().date() if len(frame) else None
    joined, _ = labeled_predictions(spec, champion, since)
    if joined is None or joined.empty:
        return {"labeled_rows": 0}
    predictions, scores, maps = candidate
    mine = frame[["request_id", "row"]].assign(c_prediction=predictions, c_score=scores, c_probabilities=maps)
    both = joined.merge(mine.astype({"request_id": str}), on=["request_id", "row"], how="inner")
    if both.empty:
        return {"labeled_rows": 0}
    champion_metrics, labeled = labeled_metrics(both, spec, model)
    as_candidate = both.assign(prediction=both["c_prediction"], score=both["c_score"],
                               probabilities=both["c_probabilities"])  # fmt: skip
    candidate_metrics, _ = labeled_metrics(as_candidate, spec, model)
    return {"labeled_rows": labeled, "champion": champion_metrics, "candidate": candidate_metrics}


def replay_candidate(spec: PipelineSpec, registry: Registry, name: str, version: str, champion: str | None,
                     now: dt.datetime | None = None) -> ReplayReport:  # fmt: skip
    """Replay ``version`` on the rows ``champion`` answered; log and tag the report; return it.

    Safe to retry: it reads only, then sets the version's ``replay`` tag whole and logs the same
    metrics and report artifact on the candidate's run again.
    """
    from airflow_mlops.core.model.release import bounded_json
    from airflow_mlops.core.registry.tracking import load_model

    metric = spec.promotion.metric
    report: ReplayReport = {
        "champion_version": champion, "candidate_version": str(version), "rows": 0, "agreement": None,
        "score_correlation": None, "score_mean_shift": None, "score_psi": None, "labeled_rows": 0,
        "metric": metric, "candidate_metric": None, "champion_metric": None, "metric_drop": None,
        "judged": False, "passed": True, "reasons": ["replay not judged: no champion to compare with"],
    }  # fmt: skip
    if champion is not None:
        frame = _logged_rows(spec, champion, now or dt.datetime.now(dt.UTC))
        report["rows"] = len(frame)
        drop = None
        if len(frame):
            model = load_model(registry, f"models:/{name}/{version}")
            outputs = _candidate_outputs(model, frame, spec)
            logged_scores = frame["score"].to_numpy(dtype=np.float64) if "score" in frame.columns else None
            figures = replay_figures(spec.model.task, frame["prediction"].to_numpy(), outputs[0], logged_scores,
                                     outputs[1])  # fmt: skip
            report["agreement"], report["score_psi"] = figures["agreement"], figures["score_psi"]
            report["score_correlation"] = figures["score_correlation"]
            report["score_mean_shift"] = figures["score_mean_shift"]
            labeled = _labeled_comparison(spec, champion, frame, model, outputs)
            report["labeled_rows"] = int(labeled["labeled_rows"])
            if report["labeled_rows"]:
                report["candidate_metric"] = labeled["candidate"].get(metric)
                report["champion_metric"] = labeled["champion"].get(metric)
            ours, theirs = report["candidate_metric"], report["champion_metric"]
            if ours is not None and theirs is not None:
                drop = (theirs - ours) if spec.promotion.higher_is_better else (ours - theirs)
                report["metric_drop"] = drop
        judged, passed, reasons = judge(spec, dict(report), report["rows"], report["labeled_rows"], drop)
        report.update({"judged": judged, "passed": passed, "reasons": reasons})
    run_id = registry.client.get_model_version(name, str(version)).run_id
    figures_logged = ("rows", "agreement", "score_correlation", "score_mean_shift", "score_psi", "labeled_rows",
                      "metric_drop")  # fmt: skip
    numbers: dict[str, Any] = {f"replay_{k}": dict(report)[k] for k in figures_logged}
    numbers |= {
        f"replay_candidate_{metric}": report["candidate_metric"],
        f"replay_champion_{metric}": report["champion_metric"],
    }
    if run_id:
        registry.log_batch(run_id, metrics={k: float(v) for k, v in numbers.items() if v is not None})
        registry.client.log_dict(run_id, dict(report), REPORT_ARTIFACT)
    registry.tag_version(name, str(version), {REPLAY_TAG: bounded_json(dict(report))})
    log.info("replay of %s v%s against v%s: %s", name, version, champion, "; ".join(report["reasons"]))
    return report


def name_challenger(registry: Registry, name: str, version: str) -> None:
    """Point the registry's ``challenger`` alias at ``version``: the serving app shadows it (``rollout.shadow``).

    Safe to retry: setting an alias to the same version again changes nothing.
    """
    registry.client.set_registered_model_alias(name, CHALLENGER_ALIAS, str(version))


def replay_and_challenge(spec: PipelineSpec, registry: Registry, gate: GateResult) -> GateResult:
    """The ``replay`` task: replay the gated candidate (``rollout.replay``), hold it when the replay says so,
    and name it ``challenger`` (``rollout.shadow``) when it still may be promoted.

    Returns the gate's result, with ``promote: false`` and the replay's reasons first when a condition
    failed, and the replay's figures under ``replay``: the promote (and approve) step reads it in
    place of the gate's. Safe to retry (see ``replay_candidate`` and ``name_challenger``).
    """
    result: GateResult = {**gate}  # type: ignore[typeddict-item]
    name, version = gate["name"], str(gate["version"])
    if spec.rollout.replay.enabled:
        report = replay_candidate(spec, registry, name, version, gate.get("champion_version"))
        result["replay"] = {
            "rows": report["rows"],
            "agreement": report["agreement"],
            "score_psi": report["score_psi"],
            "labeled_rows": report["labeled_rows"],
            "metric_drop": report["metric_drop"],
            "judged": report["judged"],
            "passed": report["passed"],
        }
        if not report["passed"]:
            result["promote"] = False
            result["reasons"] = [*report["reasons"], *gate["reasons"]]
        else:
            result["reasons"] = [*gate["reasons"], *report["reasons"]]
    if spec.rollout.shadow.enabled and result["promote"]:
        name_challenger(registry, name, version)
        log.info("%s v%s is the challenger: the serving app shadows %g of requests with it", name, version,
                 spec.rollout.shadow.share)  # fmt: skip
    return result
