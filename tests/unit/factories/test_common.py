"""What the DAG list shows of a schedule: an Asset-or-cron schedule reads as both (the 3.3 UI shows
only "n of m assets updated" for it), in the description, the docs and a tag."""

from __future__ import annotations

import pytest

from airflow_mlops.factories.common import dag_kwargs, describe_schedule, schedule_for

pytestmark = pytest.mark.unit


@pytest.fixture
def assets(mlops_home):
    from airflow_mlops.factories.assets import pipeline_assets

    return pipeline_assets("churn")


def test_an_asset_or_cron_schedule_is_described_with_its_cron_first(assets):
    schedule = schedule_for("0 3 * * 1", "UTC", [assets.landing_training, assets.drift])
    assert describe_schedule(schedule) == [
        "at 03:00, only on Monday (cron 0 3 * * 1, UTC)",
        "on labeled files landing",
        "on drift or decay found by monitoring",
    ]


def test_the_training_dag_names_its_cron_in_the_description_tags_and_docs(spec, assets):
    schedule = schedule_for("0 3 * * 1", "Europe/Paris", [assets.landing_training, assets.drift])
    kwargs = dag_kwargs(spec, "training", "churn.yaml", schedule=schedule)
    assert kwargs["schedule"] is schedule
    assert kwargs["description"].startswith(
        "Training for 'churn'; runs at 03:00, only on Monday (cron 0 3 * * 1, Europe/Paris), on labeled files "
        "landing, on drift or decay found by monitoring: "
    )
    assert "Cron 0 3 * * 1 Europe/Paris" in kwargs["tags"]
    assert sorted(kwargs["tags"])[0] == "Cron 0 3 * * 1 Europe/Paris"  # the DAG list shows the first three tags
    assert "- At 03:00, only on Monday (cron 0 3 * * 1, Europe/Paris)\n- On labeled files landing" in kwargs["doc_md"]


def test_a_cron_preset_and_an_asset_only_schedule(spec, assets):
    daily = dag_kwargs(spec, "monitoring", "churn.yaml", schedule=schedule_for("@daily", "UTC", [assets.predictions]))
    assert "runs at 00:00 (cron 0 0 * * *, UTC), on predictions logged:" in daily["description"]
    scoring = dag_kwargs(spec, "scoring", "churn.yaml", schedule=assets.landing_scoring)
    assert "runs on files to score landing:" in scoring["description"]
    assert not [tag for tag in scoring["tags"] if tag.startswith("Cron")]


def test_without_a_schedule_nothing_is_claimed(spec):
    kwargs = dag_kwargs(spec, "training", "churn.yaml")
    assert "schedule" not in kwargs and "; runs" not in kwargs["description"]
    assert kwargs["catchup"] is False
