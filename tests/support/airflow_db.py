"""A real Airflow metadata database (SQLite) for component tests, and DAG runs on it with human answers.

``migrated_database(folder)`` runs ``airflow db migrate`` once (about 5 s) into ``folder``;
``AirflowHome`` copies it for one test and gives the environment of a process that uses it.
Airflow configures its database when first imported, so whatever runs on it runs in a fresh
interpreter: ``python -m tests.support.airflow_db <command> <json>``, driven by ``AirflowHome.run``.

Commands:

- ``test-dags``: ``dag.test()`` of DAG files, answering its human-in-the-loop requests the way
  the api-server does (the handler of ``PATCH .../hitlDetails``, Airflow's own code, called
  with the answering user) when they wait; prints the task states and the requests it saw.
- ``champion-event``: sends a champion Asset event in-process (``ui.champion_events``) and
  through the REST API (Airflow's FastAPI app in-process, a JWT of its auth manager); prints
  the events Airflow stored.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def _base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO)]),
    })  # fmt: skip
    return env


def migrated_database(folder: Path) -> Path:
    """An empty, migrated Airflow database file in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).with_name("airflow")
    done = subprocess.run([str(airflow), "db", "migrate"], env=_base_env(folder), capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed: {done.stderr[-3000:]}")
    return folder / "airflow.db"


@dataclass
class AirflowHome:
    """One test's Airflow: a copy of the migrated database, a DAG folder, its connections."""

    folder: Path
    template: Path
    connections: dict[str, dict[str, Any]]

    def __post_init__(self) -> None:
        (self.folder / "dags").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.template, self.folder / "airflow.db")

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = _base_env(self.folder)
        for conn_id, conn in self.connections.items():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
        env.update(extra or {})
        return env

    def run(self, command: str, args: dict[str, Any], extra_env: dict[str, str] | None = None,
            timeout: float = 300) -> dict[str, Any]:  # fmt: skip
        """Run ``command`` in a fresh interpreter on this database; its JSON answer."""
        done = subprocess.run(
            [sys.executable, "-m", "tests.support.airflow_db", command, json.dumps(args)],
            env=self.env(extra_env), cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{command} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-8000:]}")
        # The answer is the last JSON line: a listener's process (OpenLineage's) may log after it.
        answer = next(line for line in reversed(done.stdout.strip().splitlines()) if line.startswith("{"))
        return dict(json.loads(answer))


# -- inside the fresh interpreter -----------------------------------------------------------------


def _answer_when_asked(dag_id: str, answers: dict[str, dict[str, Any]], seen: dict[str, Any]) -> None:
    """Answer each waiting HITL request of ``dag_id`` named in ``answers`` (task id -> answer), once."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select
    from sqlalchemy.orm import joinedload

    pending = dict(answers)
    deadline = time.monotonic() + 240
    while pending and time.monotonic() < deadline:
        time.sleep(0.5)
        with create_session() as session:
            waiting = session.scalars(
                select(TaskInstance)
                .where(TaskInstance.dag_id == dag_id, TaskInstance.state == TaskInstanceState.AWAITING_INPUT)
                .options(joinedload(TaskInstance.hitl_detail))
            ).all()
            for ti in waiting:
                if ti.task_id not in pending or ti.hitl_detail is None:
                    continue
                answer = pending.pop(ti.task_id)
                detail = ti.hitl_detail
                seen[ti.task_id] = {"subject": detail.subject, "body": detail.body, "params": detail.params,
                                    "options": detail.options, "defaults": detail.defaults}  # fmt: skip
                update_hitl_detail(
                    dag_id=dag_id,
                    dag_run_id=ti.run_id,
                    task_id=ti.task_id,
                    update_hitl_detail_payload=UpdateHITLDetailPayload(
                        chosen_options=answer["chosen_options"], params_input=answer.get("params_input", {})
                    ),
                    user=SimpleAuthManagerUser(username=answer["user"], role="admin"),
                    session=session,
                    map_index=ti.map_index,
                )


def _test_dags(args: dict[str, Any]) -> dict[str, Any]:
    """``dag.test()`` of each DAG of ``args["dag_files"]`` in turn (one interpreter: Airflow's in-process
    API starts once), answering the requests of ``args["answers"][dag_id][task_id]``."""
    import runpy

    # Import what the answering thread needs here, first: importing Airflow's API modules in that
    # thread while dag.test() configures the ORM mappers in this one deadlocks on the import lock
    # (seen: each thread waiting for a module the other was importing).
    import airflow.api_fastapi.core_api.routes.public.hitl  # noqa: F401
    from airflow.models import import_all_models
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    import_all_models()
    results: dict[str, Any] = {}
    for dag_file in args["dag_files"]:
        dag = runpy.run_path(dag_file)["dag"]
        seen: dict[str, Any] = {}
        answers = args["answers"].get(dag.dag_id, {})
        responder = threading.Thread(target=_answer_when_asked, args=(dag.dag_id, answers, seen), daemon=True)
        responder.start()
        run = dag.test()
        responder.join(timeout=5)
        with create_session() as session:
            tis = session.scalars(select(TaskInstance).where(TaskInstance.run_id == run.run_id,
                                                             TaskInstance.dag_id == dag.dag_id)).all()  # fmt: skip
            states = {ti.task_id: str(ti.state) for ti in tis}
        results[dag.dag_id] = {"run_id": run.run_id, "state": str(run.state), "states": states, "requests": seen}
    return results


def _asset_events(name: str) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id).where(AssetModel.name == name)
        ).all()
        return [{"id": e.id, "extra": e.extra} for e in events]


def _champion_event(args: dict[str, Any]) -> dict[str, Any]:
    """Declare the asset (a DAG file parsed into the database), then send the event both ways."""
    import runpy

    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.utils.session import create_session

    from airflow_mlops.ui.champion_events import champion_asset_name, emit_champion_event, post_champion_event

    name = champion_asset_name(args["pipeline"])
    before = _asset_events(name)
    answer: dict[str, Any] = {}
    try:
        emit_champion_event(args["pipeline"], args["model"], args["record"])
    except LookupError as exc:
        answer["unknown_asset"] = str(exc)
    runpy.run_path(args["dag_file"])  # fails here rather than in the bag when the file is broken
    manager = DagBundlesManager()
    with create_session() as session:
        manager.sync_bundles_to_db(session=session)
    for bundle in manager.get_all_dag_bundles():
        bundle.initialize()
        sync_bag_to_db(BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name),
                       bundle.name, bundle.version)  # fmt: skip
    answer["in_process_id"] = emit_champion_event(args["pipeline"], args["model"], args["record"])

    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    from airflow_mlops.devstack.rest import AirflowClient

    app = create_app(apps="core")
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="ops", role=args.get("role")))
    with TestClient(app, base_url="http://testserver/api/v2", headers={"Authorization": f"Bearer {token}"}) as http:
        client = AirflowClient("http://testserver", token=token)
        client.http = http  # Airflow's own REST app, in this process, on this database
        try:
            answer["rest"] = post_champion_event(client, args["pipeline"], args["model"], args["record"])
        except Exception as exc:
            answer["rest_error"] = f"{type(exc).__name__}: {exc}"
    answer["events"] = [e for e in _asset_events(name) if e["id"] not in {b["id"] for b in before}]
    answer["queued_dags"] = _queued_dags()
    return answer


def _queued_dags() -> list[str]:
    """DAGs an asset event queued a run for (``asset_dag_run_queue``)."""
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return sorted({row.target_dag_id for row in session.scalars(select(AssetDagRunQueue))})


COMMANDS = {"test-dags": _test_dags, "champion-event": _champion_event}

if __name__ == "__main__":
    result = COMMANDS[sys.argv[1]](json.loads(sys.argv[2]))
    print(json.dumps(result, default=str))
