"""Logging in, and Airflow's home page after the loop: components, DAGs, import errors."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.pages import sign_in

pytestmark = pytest.mark.e2e


def test_a_wrong_password_is_refused_and_the_right_one_opens_the_home_page(page, world, shots):
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/auth/login\?next="))
    expect(page.get_by_role("heading", name="Sign into Airflow")).to_be_visible()
    shots("login form")

    sign_in(page, "not-the-password")
    expect(page.get_by_text("Invalid credentials")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/auth/login"))
    shots("wrong password refused")

    sign_in(page, world.password)
    expect(page.get_by_role("heading", name="Welcome")).to_be_visible()
    expect(page).to_have_url(f"{world.airflow_url}/")
    expect(page.get_by_role("button", name="User")).to_be_visible()
    shots("signed in")


def test_the_home_page_counts_the_dags_and_shows_the_import_errors_the_api_reports(signed_in, world, shots):
    page = signed_in
    with page.expect_response(lambda r: r.url.endswith("/api/v2/plugins/importErrors") and r.ok):
        page.reload()  # the plugin error counter has its answer when the checks below run
    active = [d for d in world.client.dags() if not d["is_paused"]]
    assert len(active) == 4  # churn's training, scoring, monitoring; retention's training
    expect(page.get_by_role("link", name=f"{len(active)} Active Dags")).to_be_visible()
    for component in ("MetaDatabase", "Scheduler", "Triggerer", "Dag Processor"):
        expect(page.get_by_text(component, exact=True)).to_be_visible()
    shots("home")

    assert world.client.import_errors() == []
    expect(page.get_by_role("button", name=re.compile("Dag Import Error"))).to_have_count(0)

    # The page shows the plugin import errors the API reports. There should be none; today the
    # API reports one ("Plugin 'airflow_mlops' already registered, skipping": the plugin is found
    # twice), and the page must show exactly that count and message.
    plugin_errors = world.client.get("/plugins/importErrors")
    count = plugin_errors["total_entries"]
    button = page.get_by_role("button", name=re.compile("Plugin Import Error"))
    if count == 0:
        expect(button).to_have_count(0)
        return
    expect(button).to_have_accessible_name(f"{count} Plugin Import Error{'s' if count > 1 else ''}")
    button.click()
    dialog = page.get_by_role("dialog")
    for error in plugin_errors["import_errors"]:
        expect(dialog).to_contain_text(error["error"])
    shots("plugin import errors")
