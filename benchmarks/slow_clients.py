"""Slow and idle clients against ``airflow-mlops serve``: do legitimate requests still get answers?

A churn champion is trained into a fresh registry and served (``--workers`` processes).
An attacker process then holds ``--connections`` sockets open for ``--seconds``: a third
connect and send nothing, a third send half a request head, a third send a whole head
(with a valid token) and a few bytes of a 5,000-byte body; each socket the server closes
is opened again at once, so that many are held the whole time. Meanwhile ``--clients``
threads post one-row predictions (half on fresh connections, half on kept-alive ones)
and count every answer that is not a 200 and every request that fails.

    .venv/bin/python benchmarks/slow_clients.py --connections 2000 --seconds 30

Extra ``serve`` options go after ``--`` (e.g. ``-- --header-timeout 5``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import SPEC, TOKEN, free_port, request_bodies, train_two_versions, wait_until

KINDS = ("idle", "half_head", "half_body")


def _partial(kind: str) -> bytes:
    if kind == "half_head":
        return b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: app"
    if kind == "half_body":
        return (f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                'Content-Length: 5000\r\n\r\n{"instances": [').encode()  # fmt: skip
    return b""


async def _attacker(port: int, connections: int, seconds: float) -> dict[str, Any]:
    """Hold ``connections`` stalled sockets for ``seconds``; re-open each one the server closes."""
    lifetimes: list[float] = []
    refused = 0
    deadline = time.monotonic() + seconds

    async def hold(kind: str) -> None:
        nonlocal refused
        while time.monotonic() < deadline:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                refused += 1
                await asyncio.sleep(0.1)
                continue
            opened = time.monotonic()
            writer.write(_partial(kind))
            try:
                await asyncio.wait_for(reader.read(), max(0.01, deadline - time.monotonic()))
                lifetimes.append(time.monotonic() - opened)  # the server closed it
            except (TimeoutError, OSError):
                pass
            writer.close()

    await asyncio.gather(*(hold(KINDS[i % 3]) for i in range(connections)))
    return {
        "closed_by_server": len(lifetimes),
        "lifetime_median_s": round(statistics.median(lifetimes), 2) if lifetimes else None,
        "lifetime_max_s": round(max(lifetimes), 2) if lifetimes else None,
        "connect_failures": refused,
    }


def _attack_process(port: int, connections: int, seconds: float) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, connections + 1024), hard))
    print(json.dumps(asyncio.run(_attacker(port, connections, seconds))), flush=True)


def _legitimate(port: int, body: bytes, stop: threading.Event, out: dict[str, Any]) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    url = f"http://127.0.0.1:{port}/v1/predict"
    with httpx.Client(headers=headers, timeout=10) as kept:
        fresh = False
        while not stop.is_set():
            started = time.perf_counter()
            try:
                answer = httpx.post(url, content=body, headers=headers, timeout=10) if fresh else kept.post(
                    url, content=body)  # fmt: skip
                out["latencies"].append(time.perf_counter() - started)
                out["status"][answer.status_code] = out["status"].get(answer.status_code, 0) + 1
            except httpx.HTTPError as exc:
                out["errors"].append(type(exc).__name__)
            fresh = not fresh


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=2000, help="stalled sockets held")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=4, help="threads sending legitimate requests")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--attack", nargs=3, metavar=("PORT", "CONNECTIONS", "SECONDS"), help=argparse.SUPPRESS)
    parser.add_argument("serve_args", nargs="*", help="extra options for airflow-mlops serve (after --)")
    args = parser.parse_args()
    if args.attack:
        _attack_process(int(args.attack[0]), int(args.attack[1]), float(args.attack[2]))
        return 0

    root = Path(tempfile.mkdtemp(prefix="airflow-mlops-slow-clients-"))
    env = dict(os.environ, AIRFLOW_MLOPS_HOME=str(root / "home"), MLFLOW_TRACKING_URI=f"sqlite:///{root}/mlflow.db",
               AIRFLOW_MLOPS_SERVE_TOKEN=TOKEN)  # fmt: skip
    for var in ("AIRFLOW_MLOPS_LANDING_ROOT", "AIRFLOW_MLOPS_ARTIFACT_ROOT"):
        env.pop(var, None)
    os.environ.update({k: env[k] for k in ("AIRFLOW_MLOPS_HOME", "MLFLOW_TRACKING_URI")})
    print(f"set-up in {root}: training the champion ...", flush=True)
    train_two_versions(env["MLFLOW_TRACKING_URI"])
    body = json.loads(request_bodies(root)[1].read_text())
    payload = json.dumps({"instances": body["dataframe_records"]}).encode()
    port = free_port()
    log = (root / "serve.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "airflow-mlops"), "serve", str(SPEC), "--port", str(port),
         "--workers", str(args.workers), "--no-prediction-log", *args.serve_args],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_until(f"http://127.0.0.1:{port}/health/ready", 120)
        attacker = subprocess.Popen(
            [sys.executable, __file__, "--attack", str(port), str(args.connections), str(args.seconds)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(min(5.0, args.seconds / 4))  # let the attacker open its sockets first
        out: dict[str, Any] = {"latencies": [], "status": {}, "errors": []}
        stop = threading.Event()
        threads = [threading.Thread(target=_legitimate, args=(port, payload, stop, out)) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        attack_report = json.loads(attacker.communicate(timeout=args.seconds + 120)[0].strip().splitlines()[-1])
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        server.terminate()
        server.wait(timeout=60)
    latencies = sorted(out["latencies"])
    report = {
        "connections_held": args.connections,
        "seconds": args.seconds,
        "serve_args": args.serve_args,
        "legitimate_requests": len(latencies) + len(out["errors"]),
        "by_status": out["status"],
        "failed": len(out["errors"]) + sum(n for s, n in out["status"].items() if s != 200),
        "errors": sorted(set(out["errors"])),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2) if latencies else None,
        "attacker": attack_report,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
