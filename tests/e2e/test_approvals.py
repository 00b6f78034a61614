"""Promotions a person answers in Airflow's "Required Actions", and a run triggered from the form.

The tests run in file order on one pipeline (``retention``, whose training DAG runs one run at a
time): approve run A's candidate (then run B starts); trigger a run while B is still before its
answer (it queues); reject B's candidate. Each waits for the state it needs and fails naming it.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.pages import open_browse, open_overview
from tests.e2e.world import APPROVE_TASK, RETENTION_DAG, RETENTION_MODEL, World, subject

pytestmark = pytest.mark.e2e
REASON = "e2e: triggered from the form"


def open_request(page: Page, run_id: str, version: str, shots) -> None:
    """From the Required Actions list, open the pending request of ``run_id`` about ``version``."""
    open_browse(page, "Required Actions")
    expect(page).to_have_url(re.compile(r"/required_actions$"))
    row = page.get_by_role("row").filter(has_text=run_id)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Approval Required")
    shots("required actions")
    row.get_by_role("link", name=subject(version)).click()
    expect(page).to_have_url(re.compile(rf"/runs/{re.escape(run_id)}/tasks/{APPROVE_TASK}/required_actions$"))


def answer(page: Page, choice: str, comment: str) -> None:
    # The request's form field (Airflow 3.3 does not tie its label to the box): recorded with the answer.
    page.get_by_role("group").filter(has_text="Comment").get_by_role("textbox").fill(comment)
    page.get_by_role("button", name=choice).click()
    expect(page.get_by_text("Response received at")).to_be_visible()
    expect(page.get_by_text("from admin")).to_be_visible()
    for button in ("Approve", "Reject"):  # answered once: the request takes no second answer
        expect(page.get_by_role("button", name=button)).to_be_disabled()


def test_approving_the_first_candidate_promotes_it(signed_in, world: World, shots):
    page, run_id = signed_in, world.first_run
    version = world.gate(run_id)["version"]
    assert world.champion(RETENTION_MODEL) is None  # nothing promoted before the answer
    waiting = open_overview(page).locator("tr[data-pipeline='retention']").get_by_role("link", name="1 waiting")
    expect(waiting).to_have_attribute("href", "/required_actions")  # the overview counts the open request
    shots("overview with one approval waiting")

    open_request(page, run_id, version, shots)
    expect(page.get_by_role("heading", name=f"{RETENTION_MODEL} v{version}: the gate passed")).to_be_visible()
    expect(page.get_by_text("There is no champion yet")).to_be_visible()
    shots("approval request")
    answer(page, "Approve", "e2e: first candidate, approved in the browser")
    shots("approved")

    run = world.wait_finished(RETENTION_DAG, run_id)
    tasks = world.tasks(RETENTION_DAG, run_id)
    assert (run["state"], tasks[APPROVE_TASK], tasks["model.promote"], tasks["model.deploy"]) == (
        "success", "success", "success", "success",
    )  # fmt: skip
    hitl = world.hitl(run_id)
    assert hitl["chosen_options"] == ["Approve"] and hitl["responded_by_user"]["name"] == "admin"
    assert world.champion(RETENTION_MODEL) == version
    tag = world.approval_tag(RETENTION_MODEL, version)
    assert tag is not None
    assert (tag["decision"], tag["by"], tag["comment"]) == (
        "approved",
        "admin",
        "e2e: first candidate, approved in the browser",
    )
    # The batch that landed while A waited becomes the next run once A has ended.
    assert world.second_run()["dag_run_id"] != run_id


def test_a_run_triggered_from_the_form_queues_behind_the_open_one(signed_in, world: World, shots):
    page = signed_in
    open_one = world.second_run()
    assert open_one["state"] in ("queued", "running"), open_one  # B waits for its answer (next test)
    known = {r["dag_run_id"] for r in world.client.dag_runs(RETENTION_DAG)}

    page.goto(f"/dags/{RETENTION_DAG}")
    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name=f"Trigger Dag - {RETENTION_DAG}")).to_be_visible()
    expect(dialog.get_by_role("radio", name="Single Run")).to_be_checked()
    # The DAG's form (force_retrain, reason): its fields' labels are not tied to the boxes in Airflow 3.3.
    dialog.get_by_role("group").filter(has_text="Reason").get_by_role("textbox").fill(REASON)
    shots("trigger form")
    dialog.get_by_role("button", name="Trigger", exact=True).click()

    expect(page.get_by_role("status").filter(has_text="Dag Run Triggered").first).to_be_visible()
    expect(page).to_have_url(re.compile(rf"/dags/{RETENTION_DAG}/runs/manual__"))
    run_id = unquote(page.url.rsplit("/runs/", 1)[1])
    expect(page.get_by_text("Queued", exact=True)).to_be_visible()  # the run's state badge
    shots("new run queued")

    new = {r["dag_run_id"]: r for r in world.client.dag_runs(RETENTION_DAG) if r["dag_run_id"] not in known}
    assert list(new) == [run_id]
    assert (new[run_id]["run_type"], new[run_id]["state"], new[run_id]["triggering_user_name"]) == (
        "manual", "queued", "admin",
    )  # fmt: skip
    assert new[run_id]["conf"] == {"force_retrain": False, "reason": REASON}  # the form's fields, as typed


def test_rejecting_the_next_candidate_keeps_the_champion(signed_in, world: World, shots):
    page, run_id = signed_in, world.second_run()["dag_run_id"]
    champion = world.champion(RETENTION_MODEL)
    assert champion is not None, "the first candidate was not promoted (see the approval test)"
    world.wait_awaiting_approval(run_id)
    gate = world.gate(run_id)
    assert gate["promote"] and gate["champion_version"] == champion  # it beat the champion: a person decides

    open_request(page, run_id, gate["version"], shots)
    expect(page.get_by_role("heading", name=f"{RETENTION_MODEL} v{gate['version']}: the gate passed")).to_be_visible()
    expect(
        page.get_by_text(f"Candidate v{gate['version']} and the current champion v{champion}, both scored")
    ).to_be_visible()
    shots("rejection request")
    answer(page, "Reject", "e2e: second candidate, rejected in the browser")
    shots("rejected")

    run = world.wait_finished(RETENTION_DAG, run_id)
    tasks = world.tasks(RETENTION_DAG, run_id)
    assert (run["state"], tasks[APPROVE_TASK], tasks["model.promote"], tasks["model.deploy"]) == (
        "success", "success", "skipped", "skipped",
    )  # fmt: skip
    assert world.hitl(run_id)["chosen_options"] == ["Reject"]
    tag = world.approval_tag(RETENTION_MODEL, gate["version"])
    assert tag is not None
    assert (tag["decision"], tag["by"], tag["comment"]) == (
        "rejected",
        "admin",
        "e2e: second candidate, rejected in the browser",
    )
    assert world.champion(RETENTION_MODEL) == champion  # the alias did not move
    assert gate["version"] in world.versions(RETENTION_MODEL)  # registered, just not promoted

    open_browse(page, "Required Actions")
    expect(page.get_by_role("row").filter(has_text=world.first_run)).to_contain_text("Approval Received")
    expect(page.get_by_role("row").filter(has_text=run_id)).to_contain_text("Rejection Received")
    shots("answered requests")
