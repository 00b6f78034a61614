"""The plugin's pages inside Airflow's UI after the loop: the overview in the navigation and a DAG's Model tab."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from tests.e2e.pages import open_overview
from tests.e2e.world import RETENTION_MODEL, World

pytestmark = pytest.mark.e2e


def test_the_overview_shows_the_champion_runs_and_drift_the_loop_left(signed_in, world: World, shots):
    page, demo = signed_in, world.demo
    frame = open_overview(page)
    churn = frame.locator("tr[data-pipeline='churn']")
    champion = demo.champion
    assert champion is not None and world.champion("churn_classifier") == champion
    meets = re.compile(rf"^v{champion} since .*roc_auc \d\.\d+ \(meets threshold 0\.6\)")
    expect(churn.get_by_role("cell").nth(1)).to_contain_text(meets)
    for column, kind in enumerate(("training", "scoring", "monitoring"), start=2):  # the loop's last runs
        last = [r for r in demo.runs if r["dag_id"] == f"churn_{kind}"][-1]
        link = churn.get_by_role("cell").nth(column).get_by_role("link")
        expect(link).to_have_attribute("href", f"/dags/churn_{kind}/runs/{quote(last['run_id'], safe='')}")
        expect(link).to_contain_text(re.compile(r"^success \d{4}-\d\d-\d\d \d\d:\d\d UTC"))
    assert demo.drift is not None
    expect(churn).to_contain_text(f"drift: {len(demo.drift['drifted_features'])} feature(s)")
    expect(churn.get_by_role("link", name="churn", exact=True)).to_have_attribute(
        "href", "/dags/churn_training/plugin/mlops-model"
    )
    retention = frame.locator("tr[data-pipeline='retention']")
    current = world.champion(RETENTION_MODEL)  # v1 once test_approvals approved it
    expect(retention.get_by_role("cell").nth(1)).to_contain_text(f"v{current} since" if current else "no champion")
    shots("overview")


def test_a_pipeline_link_on_the_overview_opens_its_model_tab(signed_in, world: World, shots):
    page = signed_in
    frame = open_overview(page)
    frame.locator("tr[data-pipeline='churn']").get_by_role("link", name="churn", exact=True).click()
    # The frame is sandboxed without top navigation: the page's script pushes the link onto Airflow's router.
    expect(page).to_have_url(f"{world.airflow_url}/dags/churn_training/plugin/mlops-model")
    model = page.frame_locator("iframe[title='Model']")
    expect(model.get_by_role("heading", name="churn (churn_classifier)", level=1)).to_be_visible()
    shots("model tab from the overview")


def test_the_model_tab_shows_the_champion_its_history_card_and_monitoring(signed_in, world: World, shots):
    page, demo = signed_in, world.demo
    page.goto("/dags/churn_training")
    page.get_by_role("link", name="Model", exact=True).click()  # the DAG's tab (a task group is "model")
    expect(page).to_have_url(f"{world.airflow_url}/dags/churn_training/plugin/mlops-model")
    frame = page.frame_locator("iframe[title='Model']")
    expect(frame.get_by_role("heading", name="churn (churn_classifier)", level=1)).to_be_visible()
    champion = demo.champion
    summary = frame.locator(".summary")
    expect(summary).to_contain_text(f"v{champion} since")
    expect(summary).to_contain_text("why: all gates passed")
    shots("model tab")

    timeline = frame.locator("section#timeline")
    timeline.scroll_into_view_if_needed()
    versions = timeline.locator("table.versions tbody tr")
    expect(versions).to_have_count(len(demo.versions))
    for version in demo.versions:  # newest first on the page
        row = versions.filter(has=frame.get_by_role("link", name=f"v{version['version']}", exact=True))
        marked = " ★" if version["version"] == champion else ""
        expect(row.get_by_role("cell").first).to_have_text(f"v{version['version']}{marked}")
        expect(row).to_contain_text(version["gate"])
    expect(versions.first.get_by_role("cell").first).to_contain_text(f"v{demo.versions[-1]['version']}")
    moves = timeline.locator("table.moves tbody tr")
    expect(moves).to_have_count(len(demo.promotions))
    shots("champion timeline")

    card = frame.locator("section#card")
    card.scroll_into_view_if_needed()
    expect(card).to_contain_text(f"v{champion}: ")
    expect(card.get_by_role("link", name="MLflow run")).to_have_attribute(
        "href", re.compile(r"/#/experiments/\d+/runs/")
    )
    expect(card.get_by_role("heading", name="Test metrics")).to_be_visible()
    shots("champion card")

    monitoring = frame.locator("section#monitoring")
    monitoring.scroll_into_view_if_needed()
    expect(monitoring).to_contain_text(re.compile(r"latest run .* on v1: drift in \d+ feature\(s\)"))
    shots("monitoring")
