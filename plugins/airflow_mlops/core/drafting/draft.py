"""``airflow-mlops init``: draft a working pipeline spec (and its three DAG files) from one data file.

``core.drafting.file_profile.scan`` types and profiles the file; this module decides the column
roles, the task, expectations, the split, candidates and the promotion gate, and writes
the spec and the DAG files atomically (nothing is written unless the spec validates and
no file would be overwritten without ``force``). Every decision is a guess from one file,
so the draft says what to review."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from airflow_mlops.core.drafting.choices import (
    MARGIN,
    MIN_ROWS,
    candidate_models,
    choose_id_column,
    classification_gate,
    feature_role,
    infer_task,
    label_type,
    null_expectation,
    numeric_bounds,
    plain_value,
)
from airflow_mlops.core.drafting.file_profile import (
    PROFILE_ROWS,
    DraftError,
    TableScan,
    pipeline_name,
    scan,
)
from airflow_mlops.core.io import storage
from airflow_mlops.spec import NAME_PATTERN, DataSpec, SpecError, parse_spec

__all__ = ["Draft", "DraftError", "draft_from_file", "draft_spec", "pipeline_name", "write_draft"]


IN_SET_MAX = 20  # categorical value sets only for columns with at most this many values


RARE_CLASS = 50  # a class with fewer rows gets a stratified split, so every split holds it


DAG_KINDS = {"training": "build_training_dag", "scoring": "build_scoring_dag", "monitoring": "build_monitoring_dag"}


@dataclass
class Draft:
    """A drafted spec (the YAML mapping) and what was decided, for the summary."""

    name: str
    spec: dict[str, Any]
    scan: TableScan
    task: str
    roles: dict[str, str] = field(default_factory=dict)  # column -> id / label / numeric / categorical
    dropped: dict[str, str] = field(default_factory=dict)  # column -> why it was left out
    review: list[str] = field(default_factory=list)

    def yaml_text(self) -> str:
        head = (
            f"# Drafted by `airflow-mlops init` from {self.scan.uri}.\n"
            "# Every choice below is a guess from that one file: review it (see the init summary).\n"
        )
        return head + yaml.safe_dump(self.spec, sort_keys=False, allow_unicode=True, width=100, default_flow_style=None)

    def summary(self, written: list[str]) -> list[str]:
        data, model, promotion = self.spec["data"], self.spec["model"], self.spec["promotion"]
        counted = f"{self.scan.rows:,} rows"
        if self.scan.profiled_rows < self.scan.rows:
            counted += f" (profiled the first {self.scan.profiled_rows:,})"
        lines = [f"{self.scan.uri}: {counted}, {len(self.scan.columns)} columns ({self.scan.fmt})"]
        lines.append(f"  label: {data['label']!r} ({self.task}, {data['dtypes'].get(data['label'], 'float')})")
        lines.append(f"  id: {data['id_column']!r}" if "id_column" in data else "  id: none found")
        for kind in ("numeric", "categorical"):
            names = data["features"].get(kind, [])
            lines.append(f"  {kind} ({len(names)}): {', '.join(repr(n) for n in names) or '-'}")
        for column, reason in self.dropped.items():
            lines.append(f"  left out {column!r}: {reason}")
        split = self.spec["split"]
        lines.append(f"  split: {split['method']} {split['ratios']}")
        trials = ", ".join(c["estimator"] for c in model["candidates"])
        lines.append(f"  candidates: {trials}; promotion: {promotion['metric']} {promotion['thresholds']}")
        lines.append(f"  expectations: {len(self.spec['validation']['expectations'])}, "
                     f"min_rows {self.spec['validation']['min_rows']}")  # fmt: skip
        lines.extend(f"wrote {path}" for path in written)
        lines.extend(f"review: {item}" for item in self.review)
        return lines


def draft_spec(
    table: TableScan,
    label: str,
    task: str | None = None,
    name: str | None = None,
    validate: bool = True,
    read_file: bool = False,
) -> Draft:
    """Decide roles, types, expectations, split, candidates and gate for ``table``; validate the result
    (``validate=False`` leaves that to the caller).

    By default the pipeline trains on the batches landed in its inbox (the file is the first
    one to copy there), so later files, drifted or not, retrain it; ``read_file`` makes every
    training run read ``table``'s file itself (``data.source.uri``) instead.

    Long on purpose: the spec is drafted section by section in the order of the YAML it writes; each
    decision is a call into ``drafting.choices``.
    """
    label_column = table.columns[label]
    if label_column.present == 0:
        raise DraftError(f"{table.uri}: label '{label}' is empty in every row; pick the column to predict")
    labeled = label_column.present
    if labeled < MIN_ROWS:
        raise DraftError(f"{table.uri}: only {labeled} labeled row(s); at least {MIN_ROWS} are needed to train "
                         "and test a model")  # fmt: skip
    name = name or pipeline_name(table.uri)
    if not NAME_PATTERN.match(name):
        raise DraftError(f"pipeline name '{name}' must be lowercase letters, digits and underscores, starting with a "
                         "letter (2-63 characters): pass --name")  # fmt: skip
    task, classes = infer_task(table, label, task)
    whole = table.profiled_rows == table.rows
    id_column = choose_id_column(table, label)
    draft = Draft(name=name, spec={}, scan=table, task=task)
    roles = draft.roles
    roles[label] = "label"
    if id_column:
        roles[id_column] = "id"
    for column in table.columns:
        if column in roles:
            continue
        role, why = feature_role(table, column)
        if role:
            roles[column] = role
        else:
            draft.dropped[column] = why
    numeric = [c for c, r in roles.items() if r == "numeric"]
    categorical = [c for c, r in roles.items() if r == "categorical"]
    if not numeric and not categorical:
        reasons = "; ".join(f"{c!r}: {why}" for c, why in draft.dropped.items()) or "no other columns"
        raise DraftError(f"{table.uri}: no usable feature column besides the label ({reasons})")

    dtypes: dict[str, str] = {label: label_type(table, label, task)}
    dtypes.update({c: table.columns[c].kind for c in categorical if table.columns[c].kind in ("bool", "int")})
    expectations: list[dict[str, Any]] = []
    if id_column:
        expectations.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": id_column}})
        expectations.append({"type": "expect_column_values_to_be_unique", "kwargs": {"column": id_column}})
    counts = {plain_value(k): int(v) for k, v in (table.label_counts or {}).items()}
    if task == "classification":
        value_set = [plain_value(v) for v in classes]
        expectations.append({"type": "expect_column_values_to_be_in_set",
                             "kwargs": {"column": label, "value_set": value_set}})  # fmt: skip
    else:
        low, high = numeric_bounds(label_column.profile, label_column.kind == "int")
        between = {"column": label, "min_value": low, "max_value": high}
        expectations.append({"type": "expect_column_values_to_be_between", "kwargs": between, "severity": "warning"})
    for column in [*numeric, *categorical]:
        profile = table.columns[column].profile
        check = null_expectation(column, profile, whole)
        if check:
            expectations.append(check)
        if column in numeric:
            low, high = numeric_bounds(profile, table.columns[column].kind == "int")
            between = {"column": column, "min_value": low, "max_value": high, "mostly": 0.99}
            expectations.append({"type": "expect_column_values_to_be_between", "kwargs": between, "severity": "error"})
        elif profile.get("categories") and len(profile["categories"]) <= IN_SET_MAX:
            in_set = {"column": column, "value_set": [plain_value(v) for v in profile["categories"]]}
            expectations.append({"type": "expect_column_values_to_be_in_set", "kwargs": in_set, "severity": "warning"})

    rare = task == "classification" and min(counts.values()) < RARE_CLASS
    if id_column and not rare:
        split: dict[str, Any] = {"method": "hash"}
    else:  # a hash split of a rare class may leave it out of the test split
        split = {"method": "stratified" if task == "classification" else "random"}
    split.update({"ratios": {"train": 0.7, "validation": 0.1, "test": 0.2}, "seed": 42})
    if task == "classification":
        metric, bar, gate_note = classification_gate(classes, counts)
    else:
        metric, bar = "r2", 0.0
        gate_note = "r2 >= 0.0: the model must beat predicting the mean; raise it once you know the data"
    source: dict[str, Any] = {}
    if read_file:
        source["uri"] = table.uri if storage.is_s3(table.uri) else os.path.abspath(storage.local_path(table.uri))
    if table.delimiter != ",":
        source["csv"] = {"delimiter": table.delimiter}
    data: dict[str, Any] = {"source": source, "dtypes": dtypes}
    if id_column:
        data["id_column"] = id_column
    data["label"] = label
    data["features"] = {k: v for k, v in (("numeric", numeric), ("categorical", categorical)) if v}
    draft.spec = {
        "name": name,
        "description": f"Predict '{label}' ({task}); drafted by airflow-mlops init from {Path(table.uri).name}.",
        "tags": ["drafted"],
        "data": data,
        "validation": {"min_rows": min(1000, max(MIN_ROWS, labeled // 10)), "expectations": expectations},
        "split": split,
        "model": {"task": task, "candidates": candidate_models(task, labeled), "registered_name": f"{name}_model"},
        "promotion": {"metric": metric, "min_improvement": 0.0, "thresholds": {metric: bar}},
    }
    draft.review.extend(_review(draft, table, id_column, gate_note, counts))
    if validate:
        _validate(draft, id_column)
    return draft


def _review(draft: Draft, table: TableScan, id_column: str | None, gate_note: str, counts: dict[Any, int]) -> list[str]:
    notes = [f"promotion threshold is a guess: {gate_note}"]
    if id_column:
        hashed = draft.spec["split"]["method"] == "hash"
        how = ("it splits rows by hash (rows sharing a key stay in one split)" if hashed
               else f"the split is stratified: a class has fewer than {RARE_CLASS} rows")  # fmt: skip
        notes.append(f"check the id choice: '{id_column}' is unique in the profiled rows; {how}")
    else:
        notes.append(f"no id column found (a unique column named like id, *_id, key): the split is "
                     f"{draft.spec['split']['method']}; set data.id_column if rows have a key")  # fmt: skip
    notes.append(f"numeric bounds widen the observed range by {MARGIN:.0%} on each side (never below 0 for "
                 "non-negative columns); value sets of categories are warnings, so a new category does not "
                 "stop a run")  # fmt: skip
    if counts and draft.task == "classification" and min(counts.values()) / sum(counts.values()) < 0.05:
        notes.append("classes are imbalanced (the smallest under 5% of rows): check the metric")
    dates = [
        c for c in draft.dropped if table.columns[c].kind == "datetime" and table.columns[c].profile["distinct"] > 1
    ]
    if dates:
        notes.append(f"{dates[0]!r} is a date: if rows arrive over time, split.method: time with split.time_column: "
                     f"{dates[0]!r} (declared datetime in data.dtypes) tests on the newest rows")  # fmt: skip
    uri = draft.spec["data"]["source"].get("uri")
    if uri:
        notes.append(f"data.source.uri reads {uri} on every training run; remove it to train on the batches "
                     "landed in the pipeline's inbox")  # fmt: skip
    else:
        notes.append(f"training reads the batches landed in the pipeline's training inbox: copy "
                     f"{Path(table.uri).name} there to train (`stack up` prints the inbox paths)")  # fmt: skip
    if uri and storage.is_s3(table.uri):
        notes.append("set data.source.conn_id to the Airflow AWS connection that can read the bucket")
    if table.profiled_rows < table.rows:
        notes.append(f"only the first {table.profiled_rows:,} of {table.rows:,} rows were profiled (--profile-rows)")
    return notes


def _validate(draft: Draft, id_column: str | None) -> None:
    try:
        parse_spec(draft.yaml_text(), source=f"drafted spec for {draft.scan.uri}")
    except SpecError as exc:
        if id_column is None and DataSpec.model_fields["id_column"].is_required():
            raise DraftError(
                f"{draft.scan.uri}: no id column found (a unique column named like id, *_id or key) "
                "and this version of airflow-mlops needs data.id_column: add such a column"
            ) from None
        raise DraftError(f"the drafted spec does not validate (a bug in init; please report it): {exc}") from None


def _dag_file(name: str, kind: str) -> str:
    builder = DAG_KINDS[kind]
    return (
        f'"""The {name} use case\'s {kind} DAG, built from include/pipelines/{name}.yaml."""\n\n'
        "from pathlib import Path\n\n"
        f"from airflow_mlops.factories import {builder}\n\n"
        f'dag = {builder}(Path(__file__).parents[1] / "include" / "pipelines" / "{name}.yaml")\n'
    )


def write_draft(draft: Draft, output_dir: str | Path = ".", force: bool = False) -> list[str]:
    """Write the spec and the three DAG files under ``output_dir``; refuse to overwrite unless ``force``."""
    root = Path(output_dir)
    files = {root / "include" / "pipelines" / f"{draft.name}.yaml": draft.yaml_text()}
    files.update({root / "dags" / f"{draft.name}_{kind}.py": _dag_file(draft.name, kind) for kind in DAG_KINDS})
    existing = [str(path) for path in files if path.exists()]
    if existing and not force:
        raise DraftError(f"would overwrite {', '.join(existing)}; pass --force to replace them (or --name)")
    for path, text in files.items():
        storage.write_text(text, str(path))  # temp file + rename: never a half-written file
    return [str(path) for path in files]


def draft_from_file(
    uri: str,
    label: str,
    task: str | None = None,
    name: str | None = None,
    profile_rows: int = PROFILE_ROWS,
    read_file: bool = False,
) -> Draft:
    """Scan ``uri`` and draft its spec (nothing written)."""
    return draft_spec(scan(uri, label, profile_rows=profile_rows), label, task, name, read_file=read_file)
