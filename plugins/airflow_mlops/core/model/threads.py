"""Thread caps for tasks that fit or evaluate models, so parallel tasks do not oversubscribe.

scikit-learn's HistGradientBoosting (OpenMP) and NumPy's BLAS each start one thread per
core in every process. N tasks on C cores then run N x C busy threads: on this project's
2-core machine, 4 HistGradientBoosting fits in parallel took 380-413 s each uncapped and
7.7 s each with one thread. ``threads_per_task`` says how many threads a task gets
(``model.threads_per_task``, else ``max(1, cores // tasks that can run at once)``) and
``limit_threads`` applies it.

Why two mechanisms in ``limit_threads``: the OpenMP and BLAS runtimes read
``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ... only once, when they load. A task
process that already imported NumPy or scikit-learn has its runtimes loaded, so setting
the variables would not reach them; threadpoolctl changes the limit of the loaded runtimes
through their own APIs (``omp_set_num_threads``, ``openblas_set_num_threads``). It sees only
loaded runtimes, so the variables are set too, for a runtime first loaded inside the block.

No Airflow here: the operators work out how many tasks can run at once and pass the number.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# Read when a runtime loads: OpenMP (libgomp, libomp), OpenBLAS, MKL, BLIS, Accelerate, numexpr.
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def cgroup_cpu_limit(root: str | Path = "/sys/fs/cgroup") -> float | None:
    """CPUs this process may use by its cgroup's CPU quota (a container's ``--cpus``), or None.

    Reads cgroup v2 ``cpu.max`` ("200000 100000" = 2 CPUs, "max ..." = no quota) and v1
    ``cpu/cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (-1 = no quota), at the root a
    container sees.
    """
    base = Path(root)
    try:
        quota, period = (base / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((base / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((base / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def available_cores(cgroup_root: str | Path = "/sys/fs/cgroup") -> int:
    """Cores this process may run on: its CPU affinity (``taskset``, cpusets), lowered to
    its cgroup's CPU quota rounded up; at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_limit(cgroup_root)
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


@dataclass(frozen=True)
class ThreadCap:
    """How many threads a task gets and why (logged by the operators and on trial runs)."""

    threads: int
    cores: int
    parallel_tasks: int
    configured: int | None = None

    def describe(self) -> str:
        if self.configured is not None:
            return f"{self.threads} (model.threads_per_task)"
        return f"{self.threads} ({self.cores} cores // {self.parallel_tasks} task(s) at once)"


def parallel_tasks(width: int, *limits: int | None) -> int:
    """How many of ``width`` tasks can run at once: the smallest of ``width`` and the limits
    that are set (None, 0 or a negative number = no limit); at least 1."""
    return max(1, min([width, *(limit for limit in limits if limit is not None and limit > 0)]))


def threads_per_task(cores: int, parallel: int, configured: int | None = None) -> ThreadCap:
    """``configured`` when given (``model.threads_per_task``), else ``max(1, cores // parallel)``."""
    if configured is not None:
        if configured < 1:
            raise ValueError(f"model.threads_per_task must be at least 1, got {configured}")
        return ThreadCap(configured, cores, parallel, configured)
    return ThreadCap(max(1, cores // max(1, parallel)), cores, max(1, parallel))


@contextmanager
def limit_threads(threads: int) -> Iterator[int]:
    """Cap the BLAS and OpenMP threads of this process at ``threads`` inside the block.

    Loads NumPy's BLAS and scikit-learn's OpenMP runtime first (a task is about to use them
    anyway), so threadpoolctl sees and limits them; the ``*_NUM_THREADS`` variables cover a
    runtime loaded later inside the block and any child process. Both are restored on exit.
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    saved = {name: os.environ.get(name) for name in THREAD_ENV_VARS}
    os.environ.update({name: str(threads) for name in THREAD_ENV_VARS})
    try:
        import numpy  # noqa: F401  (loads the BLAS runtime)
        import sklearn  # noqa: F401  (loads the OpenMP runtime scikit-learn ships)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=threads):
            yield threads
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
