"""Latency, size and memory of a packaged candidate, measured at packaging (the gate compares them).

What each figure measures, so the numbers mean the same thing for every version:

- ``latency_p50_ms`` / ``latency_p99_ms``: one ``InferenceSession.run`` for 1 row, in this process,
  ONNX Runtime on the CPU with ``promotion.requirements.threads`` intra-op threads (1 inter-op),
  the garbage collector paused. Rows of the test split in turn, after ``WARMUP_CALLS`` untimed
  calls; at least ``ONE_ROW_CALLS[0]`` timed calls, more while ``BUDGET_SECONDS`` lasts, at most
  ``ONE_ROW_CALLS[1]``; a graph so slow that the minimum takes ``HARD_LIMIT_SECONDS`` stops there
  (``latency_calls`` says how many were timed). Feeds are built before timing: this is the graph's
  cost, not the HTTP decoding of the serving app.
- ``batch_latency_p50_ms`` / ``batch_latency_p99_ms``: the same for ``batch_rows`` rows per call
  (the first rows of the test split, repeated when it has fewer), ``BATCH_CALLS`` bounds.
- ``model_bytes``: every file of the MLflow model folder as logged (skops file, MLmodel,
  environment files, input example); ``onnx_bytes``: the ONNX graph file.
- ``prediction_memory_bytes``: in a fresh Python process (``core.model.memory_probe``) that loaded
  the graph and built the ``batch_rows`` feeds, how far the first prediction raised resident memory
  above what it was just before (Linux: ``VmHWM`` after a reset through ``/proc/self/clear_refs``;
  elsewhere the growth of ``ru_maxrss``, a lower bound). ONNX Runtime allocates in native code,
  which ``tracemalloc`` does not see; RSS does. ``process_peak_rss_bytes``: that process's peak
  resident memory overall (interpreter, numpy, ONNX Runtime, the session and the prediction).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlops.core.model.features import onnx_session
from airflow_mlops.spec import PipelineSpec

WARMUP_CALLS = 20
ONE_ROW_CALLS = (200, 2000)  # at least, at most
BATCH_CALLS = (50, 500)
BUDGET_SECONDS = 1.0  # per latency figure, once the minimum was reached
HARD_LIMIT_SECONDS = 20.0  # per latency figure, even below the minimum
PROBE_TIMEOUT_SECONDS = 120


def folder_bytes(path: str) -> int:
    """The size of every file under ``path`` (a file: its size)."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def _timed_calls(session: Any, feeds: list[dict[str, np.ndarray]], calls: tuple[int, int]) -> list[float]:
    """Seconds per ``session.run`` over ``feeds`` in turn, within the call and time bounds above."""
    low, high = calls
    for i in range(min(WARMUP_CALLS, high)):
        session.run(None, feeds[i % len(feeds)])
    times: list[float] = []
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        while len(times) < high:
            feed = feeds[len(times) % len(feeds)]
            began = time.perf_counter()
            session.run(None, feed)
            now = time.perf_counter()
            times.append(now - began)
            spent = now - start
            if (len(times) >= low and spent >= BUDGET_SECONDS) or spent >= HARD_LIMIT_SECONDS:
                break
    finally:
        if enabled:
            gc.enable()
    return times


def _percentiles(times: list[float], prefix: str) -> dict[str, float]:
    ms = np.asarray(times) * 1000.0
    return {
        f"{prefix}_p50_ms": float(np.percentile(ms, 50)),
        f"{prefix}_p99_ms": float(np.percentile(ms, 99)),
        f"{prefix}_calls": float(len(ms)),
    }


def batch_feeds(feeds: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """``rows`` rows of ``feeds``: the first ones, repeated from the top when there are fewer."""
    available = len(next(iter(feeds.values())))
    index = np.arange(rows) % available
    return {name: values[index] for name, values in feeds.items()}


def measure_latency(onnx_bytes: bytes, feeds: dict[str, np.ndarray], batch_rows: int, threads: int) -> dict[str, float]:
    """p50/p99 of one call for 1 row and for ``batch_rows`` rows (``feeds``: the test split's)."""
    session = onnx_session(onnx_bytes, threads=threads)
    rows = len(next(iter(feeds.values())))
    singles = [{name: values[i : i + 1] for name, values in feeds.items()} for i in range(min(rows, 256))]
    figures = _percentiles(_timed_calls(session, singles, ONE_ROW_CALLS), "latency")
    figures.update(_percentiles(_timed_calls(session, [batch_feeds(feeds, batch_rows)], BATCH_CALLS), "batch_latency"))
    figures["batch_rows"] = float(batch_rows)
    figures["threads"] = float(threads)
    return figures


def _encode(feeds: dict[str, np.ndarray]) -> dict[str, Any]:
    """Feeds as JSON for the probe process (no pickle): numbers as float32 lists, text as strings."""
    out: dict[str, Any] = {}
    for name, values in feeds.items():
        if values.dtype == object:
            out[name] = {"kind": "str", "values": [str(v) for v in values.reshape(-1)]}
        else:
            out[name] = {"kind": "float32", "values": values.astype(np.float32).reshape(-1).tolist()}
    return out


def measure_memory(onnx_bytes: bytes, feeds: dict[str, np.ndarray], threads: int) -> dict[str, float]:
    """Resident memory of one prediction of ``feeds`` in a fresh process (``core.model.memory_probe``).

    Raises ``RuntimeError`` with the probe's error when it fails.
    """
    with tempfile.TemporaryDirectory(prefix="airflow-mlops-memory-") as folder:
        with open(os.path.join(folder, "model.onnx"), "wb") as handle:
            handle.write(onnx_bytes)
        with open(os.path.join(folder, "feeds.json"), "w", encoding="utf-8") as handle:
            json.dump(_encode(feeds), handle)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        env.update({"OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        done = subprocess.run(
            [sys.executable, "-m", "airflow_mlops.core.model.memory_probe", folder, str(threads)],
            capture_output=True, text=True, env=env, timeout=PROBE_TIMEOUT_SECONDS, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"the memory probe exited with {done.returncode}: {done.stderr.strip()[-500:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return {"prediction_memory_bytes": float(report["delta"]), "process_peak_rss_bytes": float(report["peak"])}


def measure(
    spec: PipelineSpec, model_dir: str, onnx_bytes: bytes | None, test: pd.DataFrame | None, no_graph: str | None
) -> tuple[dict[str, float], dict[str, str]]:
    """Every figure that can be measured, and why the others were not.

    ``no_graph``: why there is no ONNX graph (``packaging.onnx: off``, the export's error), when
    ``onnx_bytes`` is None. Never raises for a figure it cannot take: the reason says why, and
    the gate fails a requirement on a figure that is missing.
    """
    from airflow_mlops.core.model.packaging import onnx_feeds, session_input_names

    figures: dict[str, float] = {"model_bytes": float(folder_bytes(model_dir))}
    if onnx_bytes is None or test is None:
        why = f"no ONNX graph: {no_graph or 'not exported'}"
        return figures, {"latency": why, "onnx_size": why, "memory": why}
    figures["onnx_bytes"] = float(len(onnx_bytes))
    if test.empty:
        return figures, {"latency": "the test split is empty", "memory": "the test split is empty"}
    rules, missing = spec.promotion.requirements, {}
    try:
        feeds = onnx_feeds(test, spec, session_input_names(onnx_session(onnx_bytes)))
        figures.update(measure_latency(onnx_bytes, feeds, rules.batch_rows, rules.threads))
    except Exception as exc:  # onnxruntime raises its own types; the figure is then missing, with why
        return figures, {"latency": f"ONNX Runtime failed: {exc}"[:300], "memory": "not measured: latency failed"}
    try:
        figures.update(measure_memory(onnx_bytes, batch_feeds(feeds, rules.batch_rows), rules.threads))
    except (RuntimeError, OSError, ValueError, KeyError, subprocess.TimeoutExpired) as exc:
        missing["memory"] = f"the memory probe failed: {exc}"[:300]
    return figures, missing
