"""A file that cannot be read lands; the Model tab shows it quarantined, and its report opens from there."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.e2e.world import World, wait_for

pytestmark = pytest.mark.e2e


def test_a_quarantined_batch_and_its_report_open_from_the_model_tab(signed_in, world: World, shots):
    from airflow_mlops import layout
    from airflow_mlops.core.io import storage
    from airflow_mlops.ui import quality_view

    inbox = layout.landing_dir("churn", "training")
    storage.write_bytes(b"this is not a parquet file\n", layout.join(inbox, "broken.parquet"))  # ingest cannot read it
    batch = wait_for(
        "the broken batch in churn's quarantine",
        lambda: next((b for b in quality_view.quarantined("churn") if b["file"].endswith("broken.parquet")), None),
        timeout=300,
    )
    page = signed_in
    page.goto("/dags/churn_training/plugin/mlops-model")
    frame = page.frame_locator("iframe[title='Model']")
    quarantine = frame.locator("section#quality table.quarantine")
    row = quarantine.locator("tbody tr").filter(has_text="broken.parquet")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(batch["location"])
    shots("quarantined batch")
    with page.context.expect_page() as opened:
        row.get_by_role("link", name="report").click()
    report = opened.value
    report.wait_for_load_state()
    body = json.loads(report.locator("body").inner_text())
    assert body["input"].endswith("broken.parquet") and body["stage"] == "ingest" and body["error"]
    shots.page = report
    shots("the batch's report")
