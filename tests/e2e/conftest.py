"""Browser tests: one embedded stack after a demo-like loop, and Debian's Chromium driven by Playwright.

``world`` (package scope: started once for tests/e2e, stopped before the next folder's tests run)
starts the stack on spare ports, runs the demo loop and sets up two pending promotions of the
``retention`` pipeline (see ``world.py``). ``page`` is a fresh browser context per test;
``signed_in`` is that page after logging in through Airflow's login form. Every test writes
numbered screenshots of its steps (``shots("what")``), and a ``failed.png`` when it fails, to
``$E2E_ARTIFACTS/<test>/`` (default ``tests/e2e/artifacts/``, gitignored), with the browser
console's messages in ``console.txt``.

Playwright uses the Chromium at ``$E2E_CHROMIUM`` (default ``/usr/bin/chromium``, Debian's package,
which ``make test`` installs when missing); it never downloads a browser of its own.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.pages import sign_in
from tests.e2e.world import (
    FIRST_BATCH,
    RETENTION_DAG,
    SECOND_BATCH,
    World,
    build_project,
    land_retention_batch,
    wait_for,
)

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
TIMEOUT_MS = 30_000  # for actions and for expect(): pages of a stack busy training load slowly on 2 cores

ARTIFACTS = Path(os.environ.get("E2E_ARTIFACTS") or Path(__file__).resolve().parent / "artifacts")
CHROMIUM = os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium")
# No calls home from a headless browser on a machine without a network (each would be refused).
CHROMIUM_ARGS = [
    "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--disable-default-apps",
]  # fmt: skip
VIEWPORT = {"width": 1400, "height": 900}
CALL_FAILED = pytest.StashKey[bool]()


def _port(variable: str) -> int:
    from airflow_mlops.devstack.processes import free_port

    return int(os.environ.get(variable) or free_port())


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The stack after the demo loop, retention's run A asking for approval and B's batch landed."""
    from airflow_mlops.devstack.demo import DemoLoop
    from airflow_mlops.devstack.stack import Stack, StackConfig

    root = tmp_path_factory.mktemp("e2e")
    dags, pipelines = build_project(root / "project")
    config = StackConfig(
        root=root / "runtime", dags_folder=dags, pipelines_folder=pipelines,
        airflow_port=_port("E2E_AIRFLOW_PORT"), mlflow_port=_port("E2E_MLFLOW_PORT"),
    )  # fmt: skip
    environment = dict(os.environ)  # the demo points this process's airflow-mlops roots at the stack
    stack = Stack(config).start()
    demo: DemoLoop | None = None
    try:
        demo = DemoLoop(stack, rows=3000, say=print)
        client = demo.client
        client.wait_for_dags([RETENTION_DAG], timeout=180)
        land_retention_batch(FIRST_BATCH)  # run A trains while the demo loop runs
        result = demo.run()
        if result.failures:
            raise RuntimeError(f"the demo loop failed: {result.failures}")
        first = wait_for(
            f"the first {RETENTION_DAG} run",
            lambda: next((r["dag_run_id"] for r in client.dag_runs(RETENTION_DAG)), None),
            timeout=120,
        )
        world = World(config, stack.admin_password(), client, result, first)
        world.wait_awaiting_approval(first)  # A has read its data: the second batch is B's alone
        land_retention_batch(SECOND_BATCH)  # its run starts once A has ended (one run at a time)
        yield world
    finally:
        if demo is not None:
            demo.stop_serving()
        stack.stop()
        os.environ.clear()
        os.environ.update(environment)


@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    """Headless Debian Chromium under Playwright (the sync API)."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium and chromium-driver "
            "(apt-get, as root), or set E2E_CHROMIUM to a Chromium executable"
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Shots:
    """Numbered screenshots of one test's steps, in a folder of their own."""

    def __init__(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)  # this run's pictures only
        folder.mkdir(parents=True)
        self.folder = folder
        self.page: object | None = None
        self.count = 0

    def __call__(self, step: str) -> Path:
        assert self.page is not None, "no page to photograph"
        self.count += 1
        path = self.folder / f"{self.count:02d}-{re.sub(r'[^a-z0-9]+', '-', step.lower()).strip('-')}.png"
        self.page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
        return path


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    return Shots(ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name))


@pytest.fixture
def page(browser, world: World, shots: Shots, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh browser context on the stack's Airflow (relative URLs go there); photographed on failure."""
    context = browser.new_context(viewport=VIEWPORT, base_url=world.airflow_url)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    shots.page = page
    yield page
    if request.node.stash.get(CALL_FAILED, False):
        page.screenshot(path=str(shots.folder / "failed.png"), full_page=True)
    if console:  # the browser's console of the page and its frames, for what a picture does not say
        (shots.folder / "console.txt").write_text("\n".join(console) + "\n")
    context.close()


@pytest.fixture
def signed_in(page, world: World, shots: Shots):
    """``page`` on Airflow's home page, logged in as admin."""
    from playwright.sync_api import expect

    page.goto("/")
    sign_in(page, world.password)
    expect(page.get_by_role("heading", name="Welcome")).to_be_visible()
    return page
