"""Steps through Airflow's own UI, by role and visible text (Airflow 3.3's English labels)."""

from __future__ import annotations

import re

from playwright.sync_api import FrameLocator, Page, expect


def sign_in(page: Page, password: str) -> None:
    """Fill Airflow's login form (simple auth manager) as ``admin`` and send it."""
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def open_browse(page: Page, item: str) -> None:
    """Open ``item`` of the navigation's Browse menu (plugin pages sit there too)."""
    page.get_by_role("button", name="Browse").click()
    page.get_by_role("menuitem", name=item).click()


def open_overview(page: Page) -> FrameLocator:
    """Browse > MLOps pipelines: Airflow shows the plugin's overview in a frame."""
    open_browse(page, "MLOps pipelines")
    expect(page).to_have_url(re.compile(r"/plugin/mlops"))
    frame = page.frame_locator("iframe[title='MLOps pipelines']")
    expect(frame.get_by_role("heading", name="MLOps pipelines")).to_be_visible()
    return frame
