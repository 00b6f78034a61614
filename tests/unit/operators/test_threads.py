"""Thread caps: the rule (cores // tasks at once, or model.threads_per_task), the limiter as
threadpoolctl sees it, the spec field, and the cap logged on a trial's MLflow child run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import yaml

from airflow_mlops.core.model import threads
from tests.conftest import EXAMPLE_SPEC, REPO

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("cores", "parallel", "configured", "expected"),
    [(2, 4, None, 1), (8, 3, None, 2), (8, 1, None, 8), (2, 1, None, 2), (1, 9, None, 1), (2, 4, 3, 3)],
)
def test_threads_per_task_is_cores_over_parallel_tasks_unless_configured(cores, parallel, configured, expected):
    cap = threads.threads_per_task(cores, parallel, configured)
    assert cap.threads == expected and cap.configured == configured
    assert ("model.threads_per_task" in cap.describe()) == (configured is not None)


def test_a_configured_cap_below_one_is_refused():
    with pytest.raises(ValueError, match="threads_per_task must be at least 1"):
        threads.threads_per_task(2, 1, 0)


def test_parallel_tasks_is_the_smallest_limit_that_is_set():
    assert threads.parallel_tasks(4) == 4
    assert threads.parallel_tasks(4, None, 32, 16) == 4
    assert threads.parallel_tasks(10, 3, None, 0, -1) == 3  # 0 / negative: no limit (parallelism = 0)
    assert threads.parallel_tasks(0) == 1


@pytest.mark.parametrize(
    ("files", "limit"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3.0),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_the_cgroup_cpu_quota_is_read_from_v2_and_v1_files(tmp_path, files, limit):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert threads.cgroup_cpu_limit(tmp_path) == limit


def test_available_cores_is_the_affinity_lowered_to_the_quota_rounded_up(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert threads.available_cores(tmp_path) == 4  # no quota files
    (tmp_path / "cpu.max").write_text("150000 100000")
    assert threads.available_cores(tmp_path) == 2
    (tmp_path / "cpu.max").write_text("900000 100000")
    assert threads.available_cores(tmp_path) == 4


def _limits() -> dict[str, set[int]]:
    from threadpoolctl import threadpool_info

    found: dict[str, set[int]] = {}
    for library in threadpool_info():
        found.setdefault(library["user_api"], set()).add(library["num_threads"])
    return found


def test_inside_the_limiter_threadpoolctl_reports_the_cap_for_openmp_and_blas(monkeypatch):
    import sklearn.ensemble  # noqa: F401  (the runtimes are loaded before the block, as in a busy task)

    for name in threads.THREAD_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    before = _limits()
    assert {"openmp", "blas"} <= set(before)
    with threads.limit_threads(1):
        assert _limits() == {"openmp": {1}, "blas": {1}}
        assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ["OPENBLAS_NUM_THREADS"] == "1"
    assert _limits() == before
    assert "OMP_NUM_THREADS" not in os.environ


def test_runtimes_first_loaded_inside_the_limiter_are_capped_too():
    """A fresh interpreter: nothing loaded before the block; scipy's BLAS loads inside it."""
    code = (
        "import json\n"
        "from airflow_mlops.core.model.threads import limit_threads\n"
        "from threadpoolctl import threadpool_info\n"
        "with limit_threads(1):\n"
        "    import scipy.linalg, sklearn.ensemble\n"
        "    print(json.dumps([(i['user_api'], i['prefix'], i['num_threads']) for i in threadpool_info()]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in threads.THREAD_ENV_VARS}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "plugins"), str(REPO)])
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    libraries = json.loads(out)
    assert {api for api, _, _ in libraries} >= {"openmp", "blas"} and len(libraries) >= 3
    assert all(count == 1 for _, _, count in libraries), libraries


def test_a_limit_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"), threads.limit_threads(0):
        pass


def test_the_spec_field_validates_and_leaves_the_fingerprint_alone():
    from airflow_mlops.spec import SpecError, load_spec, parse_spec

    raw = yaml.safe_load(EXAMPLE_SPEC.read_text())
    base = load_spec(EXAMPLE_SPEC)
    assert base.model.threads_per_task is None
    raw["model"]["threads_per_task"] = 2
    capped = parse_spec(yaml.safe_dump(raw), "capped.yaml")
    assert capped.model.threads_per_task == 2
    assert capped.fingerprint() == base.fingerprint()  # how fast, not what is learned
    for bad in (0, "two", 1.5):
        raw["model"]["threads_per_task"] = bad
        with pytest.raises(SpecError, match=r"capped.yaml:\n  - model.threads_per_task: "):
            parse_spec(yaml.safe_dump(raw), "capped.yaml")


def _task(**overrides):
    dag = SimpleNamespace(max_active_tasks=16, tasks=[])
    values = {"dag": dag, "executor": None, "upstream_task_ids": {"model.plan"},
              "max_active_tis_per_dagrun": None, "max_active_tis_per_dag": None}  # fmt: skip
    values.update(overrides)
    return SimpleNamespace(**values)


@pytest.fixture
def eight_cores(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    for name in ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CORE__PARALLELISM", "AIRFLOW__CELERY__WORKER_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    return monkeypatch


def test_mapped_trials_share_the_cores_by_their_count_and_the_task_limits(spec, eight_cores):
    from airflow_mlops.operators.threads import thread_cap

    assert thread_cap(_task(), spec, width=4).threads == 2  # 8 cores / 4 trials
    assert thread_cap(_task(), spec, width=1).threads == 8
    assert thread_cap(_task(max_active_tis_per_dagrun=2), spec, width=4).threads == 4
    assert thread_cap(_task(max_active_tis_per_dag=1), spec, width=4).threads == 8
    assert thread_cap(_task(dag=SimpleNamespace(max_active_tasks=2, tasks=[])), spec, width=4).threads == 4
    eight_cores.setenv("AIRFLOW__CORE__PARALLELISM", "1")  # the LocalExecutor runs one task at a time
    assert thread_cap(_task(), spec, width=4).threads == 8
    eight_cores.delenv("AIRFLOW__CORE__PARALLELISM")
    capped = spec.model_copy(update={"model": spec.model.model_copy(update={"threads_per_task": 3})})
    cap = thread_cap(_task(), capped, width=4)
    assert (cap.threads, cap.parallel_tasks) == (3, 4)


def test_the_executor_decides_the_slots_of_this_host(spec, eight_cores):
    from airflow_mlops.operators.threads import executor_slots, thread_cap

    eight_cores.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    eight_cores.setenv("AIRFLOW__CELERY__WORKER_CONCURRENCY", "2")
    assert executor_slots(_task()) == 2
    assert thread_cap(_task(), spec, width=10).threads == 4
    assert executor_slots(_task(executor="KubernetesExecutor")) == 1  # one task per pod
    eight_cores.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    eight_cores.setenv("AIRFLOW__CORE__PARALLELISM", "5")
    assert executor_slots(_task()) == 5


def test_unmapped_model_tasks_share_the_cores_with_their_capped_siblings(spec, eight_cores):
    from airflow_mlops.factories.training import build_training_dag
    from airflow_mlops.operators.threads import task_width, thread_cap

    dag = build_training_dag(EXAMPLE_SPEC)
    evaluate, package, select = (dag.get_task(f"model.{name}") for name in ("evaluate", "package", "select"))
    assert task_width(evaluate, None) == task_width(package, None) == 2  # side by side after select
    assert task_width(select, None) == 1
    assert thread_cap(evaluate, spec).threads == 4 and thread_cap(select, spec).threads == 8


def test_a_trial_logs_its_thread_cap_on_its_child_run(spec, mlops_home):
    import datetime as dt

    from airflow_mlops import layout
    from airflow_mlops.core.data import stages as data_stages
    from airflow_mlops.core.data import synthetic
    from airflow_mlops.core.landing import inbox as landing
    from airflow_mlops.core.model import stages as model_stages
    from airflow_mlops.core.registry.client import Registry

    registry = Registry(f"sqlite:///{mlops_home}/mlflow.db")
    synthetic.land_batch("churn", layout.landing_dir(spec.name, "training"), dt.date(2026, 1, 1), 2000, 1, 0.0)
    landing.claim_new_files(layout.landing_dir(spec.name, "training"),
                            layout.lake_dir(spec.name, "labeled"), (".parquet",))  # fmt: skip
    dataset = data_stages.ingest_labeled(spec, "r1")
    split = data_stages.split_dataset(spec, dataset, "r1")
    trials = model_stages.plan_trials(spec, registry, dataset, split, {"run_id": "r1"})
    assert {t["trial_count"] for t in trials} == {len(trials)}
    result = model_stages.run_trial(spec, registry, trials[0], split, {"run_id": "r1"}, threads=1)
    assert result["threads"] == 1
    assert registry.client.get_run(result["run_id"]).data.params["threads"] == "1"


def test_capped_threads_logs_the_cap_and_limits_the_block(spec, eight_cores, caplog):
    import logging

    from airflow_mlops.operators.threads import capped_threads

    task = _task(log=logging.getLogger("test.capped"), upstream_task_ids=set())
    task.dag.tasks = [task, _task(upstream_task_ids=set(), caps_model_threads=True)]
    task.caps_model_threads = True
    with caplog.at_level(logging.INFO, "test.capped"), capped_threads(task, spec) as cap:
        assert cap.threads == 4  # 8 cores // 2 capped tasks with the same (no) upstream
        assert _limits() == {"openmp": {4}, "blas": {4}}
    assert "BLAS/OpenMP threads for this task: 4 (8 cores // 2 task(s) at once)" in caplog.text
