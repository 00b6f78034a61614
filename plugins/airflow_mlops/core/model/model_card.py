"""A model card (Markdown) for each registered version: what it is, what it saw, how it did, why.

Built at the gate from the version's tags, its run's params and metrics, the evaluation
(test metrics, champion comparison, slices, importance) and the ONNX package. It becomes
the version's description in the MLflow registry and ``model_card.md`` on its run.
"""

from __future__ import annotations

from typing import Any

from airflow_mlops.core.contracts import Evaluation, GateResult, Package
from airflow_mlops.spec import PipelineSpec


def _cell(value: Any) -> str:
    """A table cell: a column name or class label may hold ``|`` or a line break."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return lines


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _validation_lines(gate: GateResult, tags: dict[str, Any]) -> list[str]:
    """The validation warnings of the training data (``core.data.validation.carried_warnings``), if known."""
    warnings = gate.get("validation_warnings")
    if warnings is None:
        return []
    lines = ["## Validation warnings", ""]
    if not warnings:
        return [*lines, "None: every warning-level expectation passed on the training data.", ""]
    count = int(tags.get("validation_warnings", len(warnings)))
    lines.append(f"{count} warning-level expectation(s) failed on the training data (they did not stop training):")
    lines += ["", *(f"- {_cell(w)}" for w in warnings)]
    if tags.get("validation_report"):
        lines += ["", f"Full report: `{tags['validation_report']}`"]
    return [*lines, ""]


_FIGURES = (  # (figure, what it is, unit, scale): core.model.footprint measures them
    ("latency_p50_ms", "latency p50, 1 row", "ms", 1.0),
    ("latency_p99_ms", "latency p99, 1 row", "ms", 1.0),
    ("batch_latency_p50_ms", "latency p50, {rows} rows", "ms", 1.0),
    ("batch_latency_p99_ms", "latency p99, {rows} rows", "ms", 1.0),
    ("model_bytes", "MLflow model folder", "MB", 1e-6),
    ("onnx_bytes", "ONNX graph", "MB", 1e-6),
    ("prediction_memory_bytes", "memory of one {rows}-row prediction", "MB", 1e-6),
    ("process_peak_rss_bytes", "peak RSS of a process serving it", "MB", 1e-6),
)


def _footprint_lines(spec: PipelineSpec, package: Package | None, gate: GateResult) -> list[str]:
    """The latency, size and memory figures measured at packaging, and the requirements on them."""
    figures = (package.get("nfr") if package is not None else None) or {}
    lines = ["## Latency, size and memory", ""]
    if not figures:
        return [*lines, "Not measured (no package task result)."]
    rows = int(figures.get("batch_rows", spec.promotion.requirements.batch_rows))
    threads = int(figures.get("threads", spec.promotion.requirements.threads))
    lines += [f"ONNX Runtime on the CPU, {threads} intra-op thread(s), in the packaging task; "
              "test-split rows; see docs/concepts.md.", ""]  # fmt: skip
    table = [(what.format(rows=rows), f"{figures[key] * scale:.4g} {unit}")
             for key, what, unit, scale in _FIGURES if key in figures]  # fmt: skip
    lines += _table(table, ("figure", "value"))
    unmeasured = (package.get("nfr_unmeasured") if package is not None else None) or {}
    for group, why in unmeasured.items():
        lines.append(f"- {group}: not measured: {_cell(why)}")
    verdict = gate.get("verdict")
    checks = (verdict.get("requirements") if verdict is not None else None) or {}
    if checks:
        lines += ["", "Requirements (`promotion.requirements`):", ""]
        lines += _table(
            [(name, f"{c['limit']:g} {c['unit']}",
              "-" if c["value"] is None else f"{c['value']:.4g} {c['unit']}",
              "passed" if c["passed"] else f"FAILED{': ' + str(c['why']) if c['why'] else ''}")
             for name, c in checks.items()],
            ("limit", "at most", "measured", "verdict"),
        )  # fmt: skip
    else:
        lines += ["", "No `promotion.requirements` limit set: measured, not gated."]
    return lines


def render_model_card(
    spec: PipelineSpec,
    details: dict[str, Any],
    evaluation: Evaluation,
    package: Package | None,
    gate: GateResult,
) -> str:
    """The Markdown card of one version: what it is, what it saw, how it did, why it was (not) promoted.

    Long on purpose: the card's sections in the order they are read.
    """
    tags, params = details.get("tags", {}), details.get("params", {})
    verdict = "passed" if gate.get("promote") else "failed"
    lines = [
        f"# {details['name']} v{details['version']}",
        "",
        f"{spec.description or spec.name} ({spec.model.task}; owner {spec.owner}).",
        "",
        f"**Gate: {verdict}.** " + "; ".join(gate.get("reasons", [])),
        "",
        "## Model",
        "",
        f"- Estimator: `{params.get('estimator', '?')}`"
        + (f", winner of {params['trials']} trial(s): `{params.get('winner_trial')}`" if "trials" in params else ""),
        "- Parameters: "
        + (", ".join(f"`{k[6:]}={v}`" for k, v in sorted(params.items()) if k.startswith("param.")) or "defaults"),
        f"- Features: numeric {spec.data.features.numeric}, categorical {spec.data.features.categorical}"
        + (f", derived {spec.data.features.derived}" if spec.data.features.derived else ""),
        f"- Preprocessing: imputation per `cleaning.impute`, scaling `{spec.model.preprocessing.scale}`, "
        f"encoding `{spec.model.preprocessing.encoding}` (fitted into the Pipeline)",
        f"- Serialized with skops; MLflow run `{details.get('run_id')}`; registered {details.get('created')}",
        "",
        "## Data and lineage",
        "",
        *_table(
            [
                ("dataset fingerprint", tags.get("data_fingerprint", "?")),
                ("train / test fingerprints", f"{tags.get('train_fingerprint')} / {tags.get('test_fingerprint')}"),
                (
                    "rows (train / validation / test)",
                    f"{params.get('train_rows')} / {params.get('validation_rows', '-')} / {params.get('test_rows')}",
                ),
                ("refit on", f"{params.get('refit_rows', params.get('train_rows'))} rows"),
                ("source batches", params.get("source_batches", "?")),
                ("spec fingerprint", tags.get("spec_fingerprint", "?")),
                ("code version", tags.get("code_version", "?")),
                ("produced by", f"{tags.get('airflow.dag_id', '?')} / {tags.get('airflow.run_id', '?')}"),
            ],
            ("what", "value"),
        ),
        "",
        *_validation_lines(gate, tags),
        "## Hold-out test metrics",
        "",
    ]
    champion = evaluation.get("champion") or {}
    rows = [(m, _number(v), _number(champion.get(m, "-"))) for m, v in sorted(evaluation["candidate"].items())]
    champion_label = f"champion v{evaluation['champion_version']}" if evaluation.get("champion_version") else "champion"
    lines += _table(rows, ("metric", "this version", f"{champion_label} (same rows)"))
    for column, per_value in (evaluation.get("slices") or {}).items():
        metric_names = sorted({k for row in per_value.values() for k in row if k != "rows"})
        lines += ["", f"### By {column}", ""]
        lines += _table(
            [
                (value, row["rows"], *(_number(row.get(m, "-")) for m in metric_names))
                for value, row in per_value.items()
            ],
            (column, "rows", *metric_names),
        )
    importance = evaluation.get("importance") or {}
    if importance:
        lines += ["", "## Most important features (permutation, test split)", ""]
        lines += _table([(name, f"{value:.4f}") for name, value in importance.items()], ("feature", "score drop"))
    lines += ["", "## Packaging", ""]
    error = package.get("error") if package is not None else None
    parity = package.get("parity") if package is not None else None
    if package is None or package.get("policy") == "off":
        lines.append("- ONNX: not exported (`packaging.onnx: off`).")
    elif error:
        lines.append(f"- ONNX: export failed: {error[:300]}")
    elif parity is not None:  # no error: the graph and its parity are there
        lines.append(
            f"- ONNX: `{package['onnx_uri']}`; parity on {parity['rows']} test rows: max |onnx - sklearn| = "
            f"{parity['max_abs_diff']:.2e} (tolerance {parity['tolerance']:g}"
            f"{' x max(1, |prediction|)' if parity.get('relative_to_magnitude') else ''}), labels agree "
            f"{parity['labels_agree']:.2%}: {'passed' if parity['passed'] else 'FAILED'}"
        )
    lines += ["", *_footprint_lines(spec, package, gate)]
    lines += [
        "",
        "## Intended use and limits",
        "",
        f"Scores rows shaped like the training data of pipeline `{spec.name}`. Inputs outside the "
        "ranges and categories seen in training are flagged by validation and monitored for drift; "
        "categories unseen in training are encoded as unknown.",
        "",
    ]
    return "\n".join(lines)
