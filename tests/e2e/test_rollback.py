"""Moving the champion from the Model tab: a rollback by a person, recorded with their name and told to Airflow.

Runs after the other model-page tests (file order): it moves churn's champion back.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.world import World

pytestmark = pytest.mark.e2e


def test_a_rollback_from_the_model_tab_moves_the_champion_and_the_history_names_the_user(
    signed_in, world: World, shots
):
    page = signed_in
    before = world.champion("churn_classifier")
    earlier = [v for v in world.versions("churn_classifier") if v != before]
    assert before is not None and earlier, "the demo loop leaves two churn versions"
    target = earlier[-1]
    page.goto("/dags/churn_training/plugin/mlops-model")
    frame = page.frame_locator("iframe[title='Model']")
    actions = frame.locator("section#actions")
    expect(actions.get_by_role("heading", name="Roll back")).to_be_visible()
    actions.locator("select[name=to_version]").select_option(target)
    actions.locator("input[name=rollback_reason]").fill("e2e: v2 is worse on recall")
    shots("rollback form")
    actions.get_by_role("button", name="Roll back").click()
    expect(actions.get_by_role("status")).to_have_text(
        re.compile(rf"champion moved v{before} -> v{target} by admin$"), timeout=120_000
    )
    assert world.champion("churn_classifier") == target
    newest = frame.locator("section#timeline table.moves tbody tr").first
    expect(newest).to_contain_text("rollback")
    expect(newest).to_contain_text("admin")
    expect(newest).to_contain_text("e2e: v2 is worse on recall")
    expect(frame.locator(".summary")).to_contain_text(f"v{target} since")
    shots("after the rollback")
    asset_id = world.client.asset_id("mlops.churn.champion")
    events = world.client.get("/assets/events", asset_id=asset_id, order_by="-timestamp", limit=1)["asset_events"]
    newest_event = events[0]["extra"]  # what DAGs on the champion asset receive, as after a promotion
    seen = (newest_event.get("to_version"), newest_event.get("by"), newest_event.get("rollback"))
    assert seen == (target, "admin", True)
