"""``airflow-mlops``: run the demo, start the local stack, land synthetic data, check a spec."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path


def _demo(args: argparse.Namespace) -> int:
    from airflow_mlops.local.demo import run_demo

    return run_demo(Path(args.root).resolve(), args.keep_running, args.airflow_port, args.mlflow_port, args.rows)


def _validate_spec(args: argparse.Namespace) -> int:
    from airflow_mlops.core.spec import SpecError, load_spec

    status = 0
    for path in args.specs:
        try:
            spec = load_spec(path)
        except SpecError as exc:
            print(exc, file=sys.stderr)
            status = 1
        else:
            print(f"{path}: OK (pipeline '{spec.name}', spec hash {spec.fingerprint()})")
    return status


def _generate(args: argparse.Namespace) -> int:
    from airflow_mlops.core import settings, synthetic
    from airflow_mlops.core.spec import load_spec

    spec = load_spec(args.spec)
    directory = args.output or settings.landing_dir(spec.name, args.kind)
    landed = synthetic.land_batch(
        spec.data.generator or spec.name,
        directory,
        dt.date.fromisoformat(args.date),
        args.rows,
        seed=args.seed,
        drift=args.drift,
        include_label=not args.no_label,
        label=spec.data.label,
    )
    print(f"wrote {landed.rows} rows to {landed.uri}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="airflow-mlops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="start the embedded stack and drive the whole loop once")
    demo.add_argument("--root", default=".runtime", help="runtime folder (wiped at start)")
    demo.add_argument("--keep-running", action="store_true", help="leave Airflow and MLflow up for browsing")
    demo.add_argument("--airflow-port", type=int, default=8080)
    demo.add_argument("--mlflow-port", type=int, default=5000)
    demo.add_argument("--rows", type=int, default=5000, help="rows per landed batch")
    demo.set_defaults(func=_demo)

    check = sub.add_parser("validate-spec", help="validate pipeline spec files")
    check.add_argument("specs", nargs="+")
    check.set_defaults(func=_validate_spec)

    gen = sub.add_parser("generate", help="land a synthetic batch for a spec's use case")
    gen.add_argument("spec")
    gen.add_argument("--kind", choices=["training", "scoring"], default="training")
    gen.add_argument("--date", default=dt.date.today().isoformat())
    gen.add_argument("--rows", type=int, default=5000)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--drift", type=float, default=0.0, help="0 = reference distribution; 1 = strong shift")
    gen.add_argument("--no-label", action="store_true", help="leave the label column out")
    gen.add_argument("--output", help="folder to write to (default: the spec's landing inbox)")
    gen.set_defaults(func=_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
