"""Steps through Airflow's own UI, by role and visible text (Airflow 3.3's English labels)."""

from __future__ import annotations

from playwright.sync_api import Page


def sign_in(page: Page, password: str) -> None:
    """Fill Airflow's login form (simple auth manager) as ``admin`` and send it."""
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def open_browse(page: Page, item: str) -> None:
    """Open ``item`` of the navigation's Browse menu (plugin pages sit there too)."""
    page.get_by_role("button", name="Browse").click()
    page.get_by_role("menuitem", name=item).click()
