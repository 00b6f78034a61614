"""The spec loader: valid specs load; bad ones name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from airflow_mlops.spec import SpecError, load_spec, parse_spec
from tests.conftest import EXAMPLE_SPEC

pytestmark = pytest.mark.unit


def _example() -> dict:
    return yaml.safe_load(EXAMPLE_SPEC.read_text())


def _write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_example_spec_loads_with_its_declared_values():
    spec = load_spec(EXAMPLE_SPEC)
    assert spec.name == "churn"
    assert spec.data.label == "churned"
    assert "plan" in spec.data.features.categorical
    assert spec.registered_model_name == "churn_classifier"
    assert spec.schedule.cron == "0 3 * * 1"


def test_unknown_field_is_named_with_the_file(tmp_path):
    raw = _example()
    raw["model"]["estimater"] = "x"
    path = _write(tmp_path, raw)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(path) in str(err.value)
    assert "model.estimater: unknown field" in str(err.value)


@pytest.mark.parametrize(
    ("mutate", "field", "fragment"),
    [
        (lambda r: r.update(name="Bad Name"), "name", "lowercase"),
        (lambda r: r["schedule"].update(cron="every day"), "schedule.cron", "not a valid cron"),
        (lambda r: r["split"].update(ratios={"train": 0.7, "test": 0.2}), "split", "must add up to 1"),
        (lambda r: r["split"].update(ratios={"train": 1.0, "test": 0.0}), "split", "test > 0"),
        (lambda r: r["split"].update(method="time"), "split", "needs split.time_column"),
        (lambda r: r["data"]["features"].update(categorical=["tenure_months"]), "data.features", "both"),
        (lambda r: r["data"].update(label="plan"), "<root>", "also listed as a feature"),
        (
            lambda r: r["validation"]["expectations"].append({"type": "check_it"}),
            "validation.expectations.8.type",
            "not an expectation name",
        ),
        (lambda r: r.pop("model"), "model", "Field required"),
        (lambda r: r["promotion"].update(metric="rmse"), "<root>", "not computed for classification"),
        (
            lambda r: r["promotion"]["thresholds"].update(r2=0.5),
            "<root>",
            "metrics ['r2'] (promotion / model.selection_metric) are not computed",
        ),
        (lambda r: r["data"]["features"]["numeric"].append("score"), "<root>", "reserved for the prediction log"),
        (lambda r: r["promotion"].update(min_improvement=-0.1), "promotion.min_improvement", "greater than or equal"),
    ],
)
def test_invalid_values_name_the_field(tmp_path, mutate, field, fragment):
    raw = _example()
    mutate(raw)
    with pytest.raises(SpecError) as err:
        load_spec(_write(tmp_path, raw))
    assert f"  - {field}: " in str(err.value)
    assert fragment in str(err.value)


def test_yaml_is_loaded_safely():
    with pytest.raises(SpecError, match="not valid YAML"):
        parse_spec("name: !!python/object/apply:os.system ['echo hi']", source="evil.yaml")


def test_top_level_must_be_a_mapping():
    with pytest.raises(SpecError, match="top level must be a mapping"):
        parse_spec("- a\n- b\n", source="list.yaml")


def test_missing_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match="cannot read pipeline spec"):
        load_spec(tmp_path / "nope.yaml")


def test_fingerprint_changes_with_content_only():
    spec = load_spec(EXAMPLE_SPEC)
    assert spec.fingerprint() == load_spec(EXAMPLE_SPEC).fingerprint()
    changed = _example()
    changed["model"]["candidates"][0]["params"]["max_iter"] = 7
    assert parse_spec(yaml.safe_dump(changed)).fingerprint() != spec.fingerprint()


def test_health_limits_are_optional_positive_numbers_and_fractions_of_an_hour_are_allowed():
    from airflow_mlops.spec.operations import MonitoringSpec

    assert MonitoringSpec().max_silence_hours is None and MonitoringSpec().max_run_minutes is None
    assert MonitoringSpec(max_silence_hours=0.02, max_label_lag_hours=1.5, max_champion_age_days=30,
                          max_run_minutes=5).max_silence_hours == 0.02  # fmt: skip
    with pytest.raises(ValueError, match="max_silence_hours"):
        MonitoringSpec(max_silence_hours=0)
    with pytest.raises(ValueError, match="max_silence_hour\n"):
        MonitoringSpec(max_silence_hour=1)  # type: ignore[call-arg]


def test_monitoring_features_set_thresholds_per_column_with_awkward_names():
    raw = _example()
    raw["data"]["features"]["numeric"].append("wait time/min")
    raw["monitoring"]["features"] = {
        "wait time/min": {"wasserstein_threshold": 0.3, "psi_threshold": 0.5},
        "plan": {"jensen_shannon_threshold": 0.2, "effect_threshold": 0.2},
    }
    spec = parse_spec(yaml.safe_dump(raw))
    own = spec.monitoring.features
    assert (own["wait time/min"].wasserstein_threshold, own["wait time/min"].effect_threshold) == (0.3, None)
    assert own["plan"].jensen_shannon_threshold == 0.2


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ({"tenure months": {"psi_threshold": 0.5}, "plan": {}}, r"monitoring.features names \['tenure months'\]"),
        ({"plan": {"psi_treshold": 0.5}}, "psi_treshold"),
        ({"plan": {"wasserstein_threshold": 0.5}}, r"wasserstein_threshold applies to numeric features; 'plan' is"),
        ({"usage_gb": {"jensen_shannon_threshold": 0.5}}, "jensen_shannon_threshold applies to categorical"),
        ({"usage_gb": {"effect_threshold": 1.5}}, "effect_threshold"),
    ],
)
def test_monitoring_features_name_an_unknown_column_field_or_kind(features, message):
    raw = _example()
    raw["monitoring"]["features"] = features
    with pytest.raises(SpecError, match=message):
        parse_spec(yaml.safe_dump(raw))
