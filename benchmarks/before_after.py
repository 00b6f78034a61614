"""Two checkouts of the project, benchmarked side by side in one run.

Each benchmark script is run from its own checkout (a refactoring moves modules, so the old
checkout's scripts import the old paths), with that checkout's ``plugins/`` first on
``PYTHONPATH`` so its copy of the package is the one imported, on the same machine, one after
the other, alternating which checkout goes first in each round. Every script prints JSON; this
one collects the figures named below and prints one JSON document (and a Markdown table).

    .venv/bin/python benchmarks/before_after.py --before /path/to/old/checkout --after . \\
        --rounds 2 --output before_after.json

A checkout made with ``git worktree add --detach /tmp/before <commit>`` is enough: the
interpreter is this one (the same pinned libraries), only the project's code differs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# name -> (script, arguments, {figure: path into the script's JSON})
BENCHMARKS: dict[str, tuple[str, list[str], dict[str, tuple[Any, ...]]]] = {
    "parse": (
        "dag_parse_time.py",
        ["--repeat", "5"],
        {
            "churn_training median s": ("churn_training.py", "median_s"),
            "churn_scoring median s": ("churn_scoring.py", "median_s"),
            "churn_monitoring median s": ("churn_monitoring.py", "median_s"),
        },
    ),
    "data_stage": (
        "data_stage.py",
        ["--rows", "1000000"],
        {"1M rows total s": ("total_seconds",), "peak RSS MiB": ("peak_rss_mib",)},
    ),
    "drift": ("drift.py", ["--rows", "1000000"], {"1M x 20 detect_drift s": ("ours", "seconds")}),
    "training_dag": (
        "training_dag.py",
        ["--rows", "200000", "--rounds", "1"],
        {
            "script s": ("rounds", 0, "script_seconds"),
            "DAG s": ("rounds", 0, "dag_test_seconds"),
            "DAG / script": ("ratio_of_totals",),
        },
    ),
    "serving": (
        "serving.py",
        ["--seconds", "10", "--warmup", "2"],
        {
            "1 row req/s": ("by_size", "1", "requests_per_second"),
            "1 row p99 ms": ("by_size", "1", "p99_ms"),
            "100 rows req/s": ("by_size", "100", "requests_per_second"),
            "100 rows p99 ms": ("by_size", "100", "p99_ms"),
        },
    ),
}


def _last_json(text: str) -> Any:
    """The last JSON document a script printed (scripts may print progress lines before it)."""
    decoder = json.JSONDecoder()
    found = None
    for start in [i for i, ch in enumerate(text) if ch == "{" and (i == 0 or text[i - 1] == "\n")]:
        try:
            found, _ = decoder.raw_decode(text[start:])
        except json.JSONDecodeError:
            continue
    if found is None:
        raise ValueError("the benchmark printed no JSON document")
    return found


def _pick(document: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        document = document[key]
    return document


def _serving_view(document: dict[str, Any]) -> dict[str, Any]:
    """Our server's runs by request size (the script also measures ``mlflow models serve``)."""
    ours = [r for r in document.get("runs", []) if r.get("server") == "airflow-mlops"]
    return {"by_size": {str(r["rows_per_request"]): r for r in ours}}


def run_one(checkout: Path, name: str, output: Path) -> dict[str, Any]:
    script, arguments, figures = BENCHMARKS[name]
    env = dict(os.environ, PYTHONPATH=f"{checkout / 'plugins'}{os.pathsep}{checkout}")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    command = [sys.executable, str(checkout / "benchmarks" / script), *arguments]
    if name == "serving":
        command += ["--output", str(output)]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-3:]}", "wall_seconds": wall}
    document = json.loads(output.read_text()) if name == "serving" else _last_json(done.stdout)
    if name == "serving":
        document = _serving_view(document)
    values = {}
    for figure, path in figures.items():
        try:
            values[figure] = _pick(document, path)
        except (KeyError, IndexError, TypeError):
            values[figure] = None
    return {"figures": values, "wall_seconds": round(wall, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), help="a subset of the benchmarks")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    results: dict[str, Any] = {"trees": {k: str(v) for k, v in trees.items()}, "rounds": []}
    scratch = Path(os.environ.get("TMPDIR", "/tmp")) / f"before-after-{os.getpid()}.json"
    for round_index in range(args.rounds):
        order = ["before", "after"] if round_index % 2 == 0 else ["after", "before"]
        for name in args.only or list(BENCHMARKS):
            for which in order:
                result = run_one(trees[which], name, scratch)
                results["rounds"].append({"round": round_index + 1, "benchmark": name, "tree": which, **result})
                print(json.dumps(results["rounds"][-1]), file=sys.stderr, flush=True)
    if args.output:
        args.output.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print("\n| round | benchmark | figure | before | after |\n| --- | --- | --- | --- | --- |")
    for round_index in range(args.rounds):
        for name in args.only or list(BENCHMARKS):
            pair = {r["tree"]: r for r in results["rounds"] if r["round"] == round_index + 1 and r["benchmark"] == name}
            for figure in BENCHMARKS[name][2]:
                cells = [pair[t].get("figures", {}).get(figure, pair[t].get("error")) for t in ("before", "after")]
                print(f"| {round_index + 1} | {name} | {figure} | {cells[0]} | {cells[1]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
