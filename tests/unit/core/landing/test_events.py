"""Triggering event payloads are sorted, and refused when they name anything outside the lake."""

from __future__ import annotations

import pytest

from airflow_mlops.core.landing.events import EventPayloadError, check_in_lake, sort_payloads

pytestmark = pytest.mark.unit

LAKE = "s3://bucket/root/churn/lake"
CLAIM = {"claim_id": "c1", "claim_uri": f"{LAKE}/_claims/labeled/c1", "claimed": [f"{LAKE}/labeled/a.csv"]}


def test_payloads_are_sorted_into_claims_uris_and_others():
    found = sort_payloads([CLAIM, CLAIM, {"claimed": [f"{LAKE}/labeled/b.csv"]}, {"anything": 1}, "text"])
    assert list(found.claims) == ["c1"] and len(found.every_claim) == 2
    assert found.uris == [f"{LAKE}/labeled/b.csv"]
    assert found.other_events == 2
    check_in_lake(found, LAKE)  # all inside the lake: no error


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ({"claimed": ["s3://elsewhere/secret.csv"]}, "s3://elsewhere/secret.csv"),
        ({"claimed": [f"{LAKE}/../other/x.csv"]}, "../other"),
        ({"claimed": [f"{LAKE}/_claims/labeled/c1/x.csv"]}, "_claims"),
        ({**CLAIM, "claim_uri": f"{LAKE}/_claims/labeled/other"}, "claim_uri"),
        ({**CLAIM, "claimed": ["/etc/passwd"]}, "/etc/passwd"),
    ],
)
def test_a_payload_outside_the_lake_is_refused_by_name(payload, named):
    with pytest.raises(EventPayloadError, match="refusing") as refused:
        check_in_lake(sort_payloads([payload]), LAKE)
    assert named in str(refused.value)


def test_claimed_must_be_a_list_of_uris():
    with pytest.raises(EventPayloadError, match="not a list of URIs"):
        sort_payloads([{"claimed": "s3://bucket/one.csv"}])
