"""``airflow-mlops check``: what a pipeline repository's CI runs before it deploys DAGs.

Three checks per spec, one report line each (``OK`` / ``FAIL`` / ``SKIP`` and why), then the
details of every failure; the exit status is 1 when any check failed:

- ``spec``: the file loads and validates (``spec.load_spec``: errors name the file and the field);
- ``dags``: in a fresh interpreter, the factories build the spec's training, scoring and
  monitoring DAGs (and Airflow's DagBag parses every ``--dags`` file) without an error and
  without importing a heavy module (``HEAVY``): what the dag-processor does on every parse;
- ``train``: a dry run of the training DAG's stages in this process on a sample of the data
  (``devstack.dry_run``), against a throw-away MLflow store and artifact root.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# Modules the DAG parse path must not import (docs/development.md); tests/dags checks dags/ with these.
# msgspec is not listed: Airflow's task SDK imports it itself.
HEAVY = (
    "mlflow", "great_expectations", "sklearn", "pandas", "numpy", "pyarrow", "boto3", "onnx", "onnxruntime",
    "skl2onnx", "skops", "scipy", "matplotlib", "uvicorn", "airflow_mlops.serving",
    "airflow_mlops.core.model.training", "airflow_mlops.core.registry.tracking",
)  # fmt: skip

# Builds each item in turn and says which heavy modules appeared with it (argv: items JSON, HEAVY JSON).
PROBE = """
import json, sys, time, traceback
heavy = json.loads(sys.argv[2])
def loaded():
    return {m for m in heavy if m in sys.modules}
out = []
for kind, path in json.loads(sys.argv[1]):
    before, start, errors, built = loaded(), time.perf_counter(), [], []
    try:
        if kind == "spec":
            from airflow_mlops.factories import build_monitoring_dag, build_scoring_dag, build_training_dag
            for build in (build_training_dag, build_scoring_dag, build_monitoring_dag):
                built.append(build(path).dag_id)
        else:
            from airflow.dag_processing.dagbag import DagBag
            bag = DagBag(dag_folder=path, safe_mode=False)
            errors = [f"{k}: {v}" for k, v in bag.import_errors.items()]
            built = sorted(bag.dag_ids)
    except Exception:
        errors.append(traceback.format_exc(limit=6))
    out.append({"kind": kind, "path": path, "errors": errors, "dags": built,
                "heavy": sorted(loaded() - before), "seconds": time.perf_counter() - start})
print(json.dumps(out))
"""


@dataclass
class Outcome:
    """One line of the report."""

    check: str  # spec, dags, train
    subject: str  # the spec or DAG file
    status: str  # OK, FAIL, SKIP
    summary: str
    details: str = ""
    seconds: float = 0.0


def check_spec(path: str) -> tuple[Outcome, object | None]:
    from airflow_mlops.spec import SpecError, load_spec

    try:
        spec = load_spec(path)
    except SpecError as exc:
        first = str(exc).splitlines()
        return Outcome("spec", path, "FAIL", " ".join(s.strip() for s in first[1:3]) or first[0], str(exc)), None
    return Outcome("spec", path, "OK", f"pipeline '{spec.name}', spec hash {spec.fingerprint()}"), spec


def _probe(items: list[tuple[str, str]], home: str) -> list[dict[str, object]]:
    """Run ``PROBE`` over ``items`` in a fresh interpreter under a throw-away Airflow and airflow-mlops home."""
    env = {**os.environ, "AIRFLOW_HOME": f"{home}/airflow", "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW_MLOPS_HOME": f"{home}/mlops", "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # fmt: skip
    for name in ("AIRFLOW_MLOPS_LANDING_ROOT", "AIRFLOW_MLOPS_ARTIFACT_ROOT"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(items), json.dumps(HEAVY)],
                          capture_output=True, text=True, env=env, timeout=600, check=False)  # fmt: skip
    if done.returncode != 0 or not done.stdout.strip():
        tail = done.stderr.strip()[-2000:]
        return [{"kind": k, "path": p, "errors": [f"the parse interpreter died: {tail}"], "dags": [], "heavy": [],
                 "seconds": 0.0} for k, p in items]  # fmt: skip
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def check_parse(items: list[tuple[str, str]], home: str) -> list[Outcome]:
    """The ``dags`` check of each item: one interpreter for all; when one imported a heavy module,
    each item again in an interpreter of its own, so the module is blamed on the item that imports it."""
    results = _probe(items, home) if items else []
    if any(r["heavy"] for r in results) and len(items) > 1:
        results = [_probe([item], home)[0] for item in items]
    outcomes = []
    for r in results:
        errors, heavy, dags = list(r["errors"]), list(r["heavy"]), list(r["dags"])  # type: ignore[call-overload]
        seconds = float(r["seconds"])  # type: ignore[arg-type]
        if errors:
            outcomes.append(Outcome("dags", str(r["path"]), "FAIL", errors[0].strip().splitlines()[-1][:200],
                                    "\n".join(errors), seconds))  # fmt: skip
        elif heavy:
            outcomes.append(Outcome("dags", str(r["path"]), "FAIL",
                                    f"parsing imports heavy modules {heavy}: import them inside execute()",
                                    f"heavy modules loaded at parse time: {heavy}", seconds))  # fmt: skip
        elif not dags:
            outcomes.append(Outcome("dags", str(r["path"]), "FAIL", "no DAG found", "", seconds))
        else:
            outcomes.append(Outcome("dags", str(r["path"]), "OK", f"{', '.join(dags)} in {seconds:.2f} s, light",
                                    seconds=seconds))  # fmt: skip
    return outcomes


def run_checks(specs: list[str], dags: list[str], train: bool, sample_rows: int, data: str | None) -> list[Outcome]:
    """Every check of ``specs`` (and of the DAG files or folders ``dags``), in report order."""
    outcomes: list[Outcome] = []
    loaded = []
    for path in specs:
        outcome, spec = check_spec(path)
        outcomes.append(outcome)
        loaded.append((path, spec))
    named = [("spec", p) for p, s in loaded if s is not None] + [("dagbag", p) for p in dags]
    shown = {str(Path(p).resolve()): p for _, p in named}  # the report names paths as given
    with tempfile.TemporaryDirectory(prefix="airflow-mlops-check-parse-") as home:
        for outcome in check_parse([(kind, str(Path(p).resolve())) for kind, p in named], home):
            outcomes.append(Outcome(**{**asdict(outcome), "subject": shown.get(outcome.subject, outcome.subject)}))
    for path, spec in loaded:
        if spec is None:
            outcomes.append(Outcome("train", path, "SKIP", "the spec does not load"))
        elif not train:
            outcomes.append(Outcome("train", path, "SKIP", "--no-train"))
        else:
            from airflow_mlops.devstack.dry_run import dry_train

            started = time.perf_counter()
            status, summary, details = dry_train(spec, sample_rows, data)  # type: ignore[arg-type]
            outcomes.append(Outcome("train", path, status, summary, details, time.perf_counter() - started))
    return outcomes


def render(outcomes: list[Outcome]) -> str:
    """One line per check, then the details of each failure."""
    lines = [f"{o.status:<4} {o.check:<5} {o.subject}: {o.summary}" for o in outcomes]
    failed = [o for o in outcomes if o.status == "FAIL" and o.details]
    for o in failed:
        lines += ["", f"--- {o.check} {o.subject}", o.details.rstrip()]
    verdict = "FAILED" if any(o.status == "FAIL" for o in outcomes) else "passed"
    counts = {s: sum(o.status == s for o in outcomes) for s in ("OK", "FAIL", "SKIP")}
    lines += ["", f"check {verdict}: {counts['OK']} OK, {counts['FAIL']} FAIL, {counts['SKIP']} SKIP"]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    if args.sample_rows < 1:
        print("check: --sample-rows must be at least 1", file=sys.stderr)
        return 2
    outcomes = run_checks(args.specs, args.dags or [], not args.no_train, args.sample_rows, args.data)
    print(json.dumps([asdict(o) for o in outcomes], indent=2) if args.json else render(outcomes))
    return 1 if any(o.status == "FAIL" for o in outcomes) else 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The ``check`` command's options."""
    check = sub.add_parser("check", help="CI before deploying: validate specs, parse their DAGs light, dry-train")
    check.add_argument("specs", nargs="+", help="pipeline spec files")
    check.add_argument("--dags", action="append", help="a DAG file or folder to parse too (repeatable)")
    check.add_argument("--sample-rows", type=int, default=2000, help="rows of data the dry training uses")
    check.add_argument("--data", help="a labeled sample file to train on (default: the spec's source or generator)")
    check.add_argument("--no-train", action="store_true", help="skip the dry training")
    check.add_argument("--json", action="store_true", help="the outcomes as JSON")
    check.set_defaults(func=main)
