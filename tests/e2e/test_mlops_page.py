"""The plugin's "MLOps pipelines" page, reached through Airflow's navigation, after the loop."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.pages import open_browse
from tests.e2e.world import RETENTION_MODEL

pytestmark = pytest.mark.e2e


def test_the_mlops_page_lists_both_pipelines_with_the_champions_mlflow_holds(signed_in, world, shots):
    page = signed_in
    open_browse(page, "MLOps pipelines")
    expect(page).to_have_url(re.compile(r"/plugin/mlops"))
    frame = page.frame_locator("iframe[title='MLOps pipelines']")  # Airflow shows external views framed
    expect(frame.get_by_role("heading", name="MLOps pipelines")).to_be_visible()
    shots("mlops pipelines page")

    rows = frame.get_by_role("row")
    churn = rows.filter(has=frame.get_by_role("cell", name="churn", exact=True))
    champion = world.demo.champion
    assert champion is not None and world.champion("churn_classifier") == champion
    expect(churn).to_contain_text(f"churn_classifier champion: v{champion}")
    for record in world.demo.promotions:  # the demo's moves, oldest first
        before = f"v{record['from_version']}" if record["from_version"] else "(none)"
        expect(churn).to_contain_text(f"{before} -> v{record['to_version']} at {record['at']}")
    for kind in ("training", "scoring", "monitoring"):
        expect(churn.get_by_role("link", name=f"churn_{kind}")).to_have_attribute("href", f"/dags/churn_{kind}")

    retention = rows.filter(has=frame.get_by_role("cell", name="retention", exact=True))
    current = world.champion(RETENTION_MODEL)  # v1 once test_approvals approved it, else none
    expect(retention).to_contain_text(f"{RETENTION_MODEL} champion: {f'v{current}' if current else '(none)'}")

    # A DAG link leaves the frame for Airflow's own DAG page.
    churn.get_by_role("link", name="churn_training").click()
    expect(page).to_have_url(f"{world.airflow_url}/dags/churn_training")
    expect(page.get_by_role("button", name="Trigger Dag")).to_be_visible()
    shots("churn training dag page")
