"""The embedded stack's bookkeeping: environment, the process record, `stack up | status | down` without services.

Real services start only in tests/integration/test_stack_cli.py; here the "services" are
plain sleeping processes recorded in ``stack.json`` the way ``Stack.start`` records them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airflow_mlops import layout
from airflow_mlops.cli import build_parser, main
from airflow_mlops.devstack import processes
from airflow_mlops.devstack.processes import ProcessRecord
from airflow_mlops.devstack.stack import (
    StackConfig,
    StackState,
    read_state,
    reset,
    state_path,
    stop_recorded,
    stop_stale,
    write_state,
)
from tests.conftest import REPO

pytestmark = pytest.mark.unit

SLEEPER = [sys.executable, "-c", "import time; time.sleep(300)"]


def _spawn(cmd: list[str] = SLEEPER) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, start_new_session=True)  # as Stack._spawn does


def _record(root: Path, procs: dict[str, subprocess.Popen[bytes]], detached: bool = True, **cfg: int) -> StackState:
    """Write ``stack.json`` for ``procs`` exactly as ``Stack.start`` would."""
    state = StackState(
        config=StackConfig(root=root, **cfg),  # type: ignore[arg-type]
        processes=[ProcessRecord.of(name, proc.pid) for name, proc in procs.items()],
        detached=detached,
        driver=None if detached else ProcessRecord.of("driver", os.getpid()),
        started_at="2026-12-01T12:00:00+00:00",
    )
    root.mkdir(parents=True, exist_ok=True)
    write_state(state)
    return state


def _gone(proc: subprocess.Popen[bytes], timeout: float = 10) -> bool:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


@pytest.fixture
def sleepers():
    started: list[subprocess.Popen[bytes]] = []

    def start(cmd: list[str] = SLEEPER) -> subprocess.Popen[bytes]:
        proc = _spawn(cmd)
        started.append(proc)
        return proc

    yield start
    for proc in started:  # never leave a sleeper behind, whatever the test did
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for sock in socks:
        sock.close()
    return ports


# -- environment ---------------------------------------------------------------------------------
def test_stack_environment_points_every_process_at_the_same_roots(tmp_path, monkeypatch):
    monkeypatch.setenv(layout.LANDING_ENV, "s3://somewhere-else")  # the embedded stack keeps its own
    cfg = StackConfig(root=tmp_path, airflow_port=8123, mlflow_port=5123, extra_env={"X_EXTRA": "1"})
    env = cfg.environment()
    assert env[layout.HOME_ENV] == str(tmp_path)
    assert env[layout.LANDING_ENV] == str(tmp_path / "landing")
    assert env[layout.ARTIFACT_ENV] == str(tmp_path / "artifacts")
    assert env[layout.PIPELINES_ENV] == str(REPO / "include" / "pipelines")
    assert json.loads(env["AIRFLOW_CONN_MLFLOW_DEFAULT"]) == {"conn_type": "mlflow", "host": "http://127.0.0.1:5123"}
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8123/execution/"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(REPO / "dags")
    # The package's plugin loads through its entry point: the plugins folder is an empty one of the stack.
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(tmp_path / "airflow" / "plugins")
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)  # standalone spawns `airflow` by name
    assert env["X_EXTRA"] == "1"


def test_tasks_started_before_the_api_server_listens_wait_for_it(tmp_path):
    # Seen on a fresh stack: calendar runs due at start-up were queued ~20 s before standalone's
    # api-server listened; Airflow's 5 tries (~15 s) killed them unstarted (failed, empty log).
    env = StackConfig(root=tmp_path).environment()
    retries = int(env["AIRFLOW__WORKERS__EXECUTION_API_RETRIES"])
    shortest_wait = (retries - 1) * float(env["AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MIN"])
    assert shortest_wait >= 90


def test_a_project_directory_gives_its_own_folders(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "dags").mkdir(parents=True)
    monkeypatch.chdir(project)
    args = build_parser().parse_args(["stack", "up", "--pipelines-folder", "specs", "--airflow-port", "8124"])
    from airflow_mlops.devstack.stack_cli import _project_config

    cfg = _project_config(args)
    env = cfg.environment()
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(project / "dags")
    assert env[layout.PIPELINES_ENV] == str(project / "specs")
    assert cfg.root == project / ".runtime" and cfg.airflow_url == "http://127.0.0.1:8124"


# -- CLI parsing -----------------------------------------------------------------------------------
def test_stack_commands_parse_with_their_defaults(monkeypatch):
    monkeypatch.delenv(layout.HOME_ENV, raising=False)
    up = build_parser().parse_args(["stack", "up"])
    assert (up.root, up.airflow_port, up.mlflow_port) == (".runtime", 8080, 5000)
    assert (up.dags_folder, up.pipelines_folder, up.restart) == ("dags", "include/pipelines", False)
    down = build_parser().parse_args(["stack", "down", "--root", "/x", "--timeout", "3"])
    assert (down.root, down.timeout, down.func.__name__) == ("/x", 3.0, "down_command")
    assert build_parser().parse_args(["stack", "status"]).func.__name__ == "status_command"
    monkeypatch.setenv(layout.HOME_ENV, "/srv/mlops")
    assert build_parser().parse_args(["stack", "status"]).root == "/srv/mlops"


def test_stack_without_a_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["stack"])
    assert exit_.value.code == 2 and "up,status,down" in capsys.readouterr().err


# -- status when down ------------------------------------------------------------------------------
def test_status_without_a_stack_says_so_and_exits_non_zero(tmp_path, capsys):
    assert main(["stack", "status", "--root", str(tmp_path / "rt")]) == 1
    assert "no stack runs in" in capsys.readouterr().out
    assert not (tmp_path / "rt").exists()  # asking created nothing


def test_status_of_a_stack_whose_services_died_is_not_up(tmp_path, capsys, sleepers):
    airflow_port, mlflow_port = _free_ports(2)
    mlflow, airflow = sleepers(), sleepers()
    _record(tmp_path, {"mlflow": mlflow, "airflow": airflow}, airflow_port=airflow_port, mlflow_port=mlflow_port)
    airflow.kill()
    airflow.wait()
    assert main(["stack", "status", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"airflow  pid {airflow.pid}" in out and "NOT RUNNING" in out
    assert "health: FAILING (no answer" in out and "status: NOT UP" in out
    assert f"training inbox (labeled files -> a training run): {tmp_path}/landing/churn/training" in out
    assert f"AIRFLOW_MLOPS_HOME={tmp_path} AIRFLOW_MLOPS_SERVE_TOKEN=<token> airflow-mlops serve " in out
    assert f"--tracking-uri http://127.0.0.1:{mlflow_port}" in out


# -- the process record ----------------------------------------------------------------------------
def test_the_record_survives_a_round_trip(tmp_path, sleepers):
    written = _record(tmp_path, {"mlflow": sleepers()}, airflow_port=8125, mlflow_port=5125)
    read = read_state(tmp_path)
    assert read is not None and read.to_json() == written.to_json()
    assert read.processes[0].start_time == processes.start_time(read.processes[0].pid) is not None
    assert read.running()


def test_a_corrupt_record_is_reported_with_its_path(tmp_path):
    state_path(tmp_path).write_text("{not json")
    with pytest.raises(RuntimeError, match=f"cannot read {state_path(tmp_path)}"):
        read_state(tmp_path)


def test_processes_left_by_a_killed_driver_are_stopped_on_the_next_start(tmp_path, sleepers):
    orphan = sleepers()
    state = _record(tmp_path, {"airflow": orphan}, detached=False)
    state.driver = ProcessRecord("driver", 2**22 + 1, 1)  # a driver that no longer exists
    write_state(state)
    assert not read_state(tmp_path).running()  # type: ignore[union-attr]
    stop_stale(tmp_path)
    assert _gone(orphan) and orphan.returncode != 0
    assert not state_path(tmp_path).exists()


def test_a_pid_now_held_by_another_program_is_never_signalled(tmp_path, sleepers):
    stranger = sleepers()
    recorded = ProcessRecord("airflow", stranger.pid, (processes.start_time(stranger.pid) or 0) - 1)
    assert not processes.alive(recorded)
    assert processes.terminate([recorded], timeout=1) == set()
    assert stranger.poll() is None


def test_stop_reaches_task_processes_in_their_own_process_group(tmp_path, sleepers):
    """Airflow moves each task into a process group of its own; the session still ties it to the stack."""
    marker = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen({SLEEPER!r}, process_group=0)\n"
        f"open({str(marker)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(300)\n"
    )
    service = sleepers([sys.executable, "-c", code])
    deadline = time.monotonic() + 20
    while not marker.exists() or not marker.read_text():
        assert time.monotonic() < deadline, "the service did not start its task"
        time.sleep(0.1)
    task = int(marker.read_text())
    assert os.getpgid(task) != service.pid  # not in the service's process group
    _record(tmp_path, {"airflow": service})
    stopped = stop_recorded(tmp_path, timeout=5)
    assert {service.pid, task} <= stopped
    assert _gone(service)
    assert not processes.alive(ProcessRecord("task", task))


def test_a_service_ignoring_sigterm_is_killed_after_the_timeout(tmp_path, sleepers):
    stubborn = sleepers([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                         "print('ready', flush=True); time.sleep(300)"])  # fmt: skip
    time.sleep(1)  # let it install its handler
    _record(tmp_path, {"mlflow": stubborn})
    started = time.monotonic()
    stop_recorded(tmp_path, timeout=1)
    assert _gone(stubborn) and stubborn.returncode == -9
    assert time.monotonic() - started < 10


# -- down ------------------------------------------------------------------------------------------
def test_down_stops_what_up_recorded_and_is_safe_to_run_twice(tmp_path, capsys, sleepers):
    mlflow, airflow, bystander = sleepers(), sleepers(), sleepers()
    _record(tmp_path, {"mlflow": mlflow, "airflow": airflow}, airflow_port=_free_ports(1)[0], mlflow_port=1)
    assert main(["stack", "down", "--root", str(tmp_path), "--timeout", "5"]) == 0
    assert "stopped mlflow, airflow (2 processes)" in capsys.readouterr().out
    assert _gone(mlflow) and _gone(airflow)
    assert bystander.poll() is None  # nothing else
    assert not state_path(tmp_path).exists()
    assert main(["stack", "down", "--root", str(tmp_path)]) == 0
    assert "nothing to stop" in capsys.readouterr().out


def test_down_refuses_to_stop_a_running_demo(tmp_path, capsys, sleepers):
    airflow = sleepers()
    _record(tmp_path, {"airflow": airflow}, detached=False)  # driven by this (live) process
    assert main(["stack", "down", "--root", str(tmp_path)]) == 1
    assert "stop the demo" in capsys.readouterr().err and airflow.poll() is None


# -- up without starting anything ------------------------------------------------------------------
def _up(root: Path, *extra: str) -> int:
    return main(["stack", "up", "--root", str(root), "--dags-folder", str(REPO / "dags"),
                 "--pipelines-folder", str(REPO / "include" / "pipelines"), *extra])  # fmt: skip


def test_up_when_already_up_says_so_and_starts_nothing(tmp_path, capsys, sleepers):
    mlflow, airflow = sleepers(), sleepers()
    before = _record(tmp_path, {"mlflow": mlflow, "airflow": airflow}, airflow_port=8126, mlflow_port=5126)
    assert _up(tmp_path, "--airflow-port", "8127") == 0
    out = capsys.readouterr().out
    assert "already up" in out and "http://127.0.0.1:8126" in out
    assert f"scoring inbox (files to score -> a scoring run): {tmp_path}/landing/churn/scoring" in out
    assert read_state(tmp_path).to_json() == before.to_json()  # type: ignore[union-attr]


def test_up_fails_naming_a_port_another_program_holds(tmp_path, capsys):
    mlflow_port = _free_ports(1)[0]
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        assert _up(tmp_path, "--airflow-port", str(taken), "--mlflow-port", str(mlflow_port)) == 1
    err = capsys.readouterr().err
    assert f"port {taken} on 127.0.0.1 is already in use by another program" in err and "--airflow-port" in err
    assert not state_path(tmp_path).exists()  # nothing started, nothing recorded


def test_up_without_a_dags_folder_tells_how_to_make_one(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["stack", "up", "--root", str(tmp_path / "rt")]) == 2
    err = capsys.readouterr().err
    assert f"no folder {tmp_path / 'dags'}" in err and "airflow-mlops init" in err


def test_the_demo_does_not_wipe_a_stack_started_with_stack_up(tmp_path, capsys, sleepers, monkeypatch):
    from airflow_mlops.devstack import demo

    monkeypatch.setattr(demo.signal, "signal", lambda *a: None)  # run_demo installs a SIGTERM handler
    airflow = sleepers()
    _record(tmp_path, {"airflow": airflow})
    assert demo.run_demo(tmp_path, False, 1, 2, 10) == 1
    assert "`airflow-mlops stack up` runs a stack" in capsys.readouterr().err
    assert airflow.poll() is None and state_path(tmp_path).exists()


def test_reset_removes_the_runtime_folder(tmp_path):
    root = tmp_path / "runtime"
    (root / "airflow").mkdir(parents=True)
    reset(root)
    assert not root.exists()


# -- how DAG files find their spec -----------------------------------------------------------------
def test_a_dag_file_finds_its_spec_by_name_in_the_pipelines_folder(tmp_path, monkeypatch):
    from airflow_mlops.factories.common import resolve
    from airflow_mlops.spec import SpecError

    (tmp_path / "churn.yaml").write_text("name: churn\n")
    monkeypatch.setenv(layout.PIPELINES_ENV, str(tmp_path))
    assert resolve("churn") == tmp_path / "churn.yaml"
    assert resolve("/elsewhere/include/pipelines/churn.yaml") == tmp_path / "churn.yaml"
    here = REPO / "include" / "pipelines" / "churn.yaml"
    assert resolve(here) == here  # an existing path wins
    with pytest.raises(SpecError, match=f"no pipeline spec missing nor {tmp_path}/missing.yaml or"):
        resolve("missing")
    monkeypatch.delenv(layout.PIPELINES_ENV)
    with pytest.raises(SpecError, match="AIRFLOW_MLOPS_PIPELINES_DIR unset"):
        resolve("churn")


# -- start over leftovers, report what cannot be used ----------------------------------------------
def test_start_over_a_crashed_stack_stops_its_leftovers_and_records_the_new_services(tmp_path, monkeypatch, sleepers):
    from airflow_mlops.devstack.stack import Stack

    airflow_port, mlflow_port = _free_ports(2)
    crashed, leftover = sleepers(), sleepers()
    _record(tmp_path, {"airflow": crashed, "mlflow": leftover}, airflow_port=airflow_port, mlflow_port=mlflow_port)
    crashed.kill()
    crashed.wait()
    commands: dict[str, list[str]] = {}
    spawned: list[subprocess.Popen[bytes]] = []

    def spawn(self: Stack, name: str, cmd: list[str], env: dict[str, str]) -> None:
        commands[name] = cmd
        self.processes[name] = sleepers()
        spawned.append(self.processes[name])

    monkeypatch.setattr(Stack, "_spawn", spawn)
    monkeypatch.setattr(Stack, "wait_healthy", lambda self, timeout: None)
    cfg = StackConfig(root=tmp_path, airflow_port=airflow_port, mlflow_port=mlflow_port)
    stack = Stack(cfg).start(detached=True)
    assert _gone(leftover)  # the old mlflow, not the new services
    state = read_state(tmp_path)
    assert state is not None and state.detached and state.driver is None and state.running()
    assert [p.pid for p in state.processes] == [stack.processes["mlflow"].pid, stack.processes["airflow"].pid]
    assert commands["airflow"] == ["airflow", "standalone"] and f"{mlflow_port}" in commands["mlflow"]
    stack.stop(timeout=5)
    assert all(_gone(p) for p in spawned) and read_state(tmp_path) is None


def test_a_bad_spec_and_an_import_error_are_reported_not_hidden(tmp_path):
    from airflow_mlops.devstack.stack_cli import describe, discover

    (tmp_path / "churn.yaml").write_text((REPO / "include" / "pipelines" / "churn.yaml").read_text())
    (tmp_path / "broken.yml").write_text("name: broken\n")
    cfg = StackConfig(root=tmp_path / "rt", pipelines_folder=tmp_path)
    pipelines = discover(cfg)
    assert [(p.path.name, p.name) for p in pipelines] == [("broken.yml", None), ("churn.yaml", "churn")]
    dags = [{"dag_id": "churn_training", "tags": [{"name": "airflow-mlops"}, {"name": "churn"}]},
            {"dag_id": "other", "tags": [{"name": "airflow-mlops"}]}]  # fmt: skip
    errors = [{"filename": "churn_scoring.py", "stack_trace": "Traceback ...\nSpecError: churn.yaml: bad field"}]
    text = "\n".join(describe(cfg, pipelines, (dags, errors)))
    assert f"pipeline spec {tmp_path / 'broken.yml'}: NOT USABLE" in text and "data: Field required" in text
    assert "DAGs in Airflow: churn_training\n" in text  # `other` belongs to no spec of this folder
    assert "IMPORT ERROR in churn_scoring.py: SpecError: churn.yaml: bad field" in text


def test_a_single_pipeline_project_holds_its_dags_and_the_spec_they_find(tmp_path):
    from airflow_mlops.devstack.stack import single_pipeline_project

    dags, pipelines = single_pipeline_project(tmp_path / "project")
    assert sorted(p.name for p in dags.iterdir()) == ["churn_monitoring.py", "churn_scoring.py", "churn_training.py"]
    assert [p.name for p in pipelines.iterdir()] == ["churn.yaml"]
    assert pipelines == dags.parent / "include" / "pipelines"  # where the DAG files look for their spec
