"""One incident per condition: it opens once, stays open silently, recovers once; the outbox survives retries."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_mlops.core.operations import incidents

pytestmark = pytest.mark.unit

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
BREACHED = {"breached": True, "summary": "no prediction logged for 7.0 h", "since": "2026-12-01T01:00:00+00:00"}
CLEAR = {"breached": False, "summary": "no prediction logged for 2 min", "since": "2026-12-01T09:58:00+00:00"}


def _run(state, finding, minutes, enabled=("silence",)):
    return incidents.reconcile(state, {"silence": finding}, enabled, "churn", T0 + dt.timedelta(minutes=minutes),
                               f"run-{minutes}")  # fmt: skip


def test_an_incident_opens_once_stays_open_silently_and_recovers_once():
    state = incidents.empty()
    assert _run(state, BREACHED, 0) == (["silence"], [])
    assert _run(state, BREACHED, 5) == ([], [])  # still breached: no second alert
    assert _run(state, BREACHED, 10) == ([], [])
    assert [m["kind"] for m in state["outbox"]] == ["alert"]
    assert _run(state, CLEAR, 15) == ([], ["silence"])
    assert _run(state, CLEAR, 20) == ([], [])  # clear stays clear: no second recovery
    assert [m["kind"] for m in state["outbox"]] == ["alert", "recovered"]
    alert, recovered = state["outbox"]
    incident_id = alert["incident"]["id"]
    assert alert["id"] == f"{incident_id}:alert" and recovered["id"] == f"{incident_id}:recovered"
    assert state["open"] == {}
    (closed,) = state["closed"]
    assert closed["opened_by"] == "run-0" and closed["closed_by"] == "run-15"
    assert closed["summary"].endswith("now: no prediction logged for 2 min")


def test_a_new_breach_after_recovery_is_a_new_incident():
    state = incidents.empty()
    _run(state, BREACHED, 0)
    _run(state, CLEAR, 5)
    assert _run(state, BREACHED, 10) == (["silence"], [])
    ids = {m["incident"]["id"] for m in state["outbox"]}
    assert len(ids) == 2 and [m["kind"] for m in state["outbox"]] == ["alert", "recovered", "alert"]


def test_a_check_turned_off_closes_its_incident_and_one_not_judged_is_left_open():
    state = incidents.empty()
    _run(state, BREACHED, 0)
    assert incidents.reconcile(state, {}, ["silence"], "churn", T0, "r") == ([], [])  # not judged this time
    assert "silence" in state["open"]
    assert incidents.reconcile(state, {}, [], "churn", T0, "r") == ([], ["silence"])  # field set back to None
    assert state["outbox"][-1]["kind"] == "recovered"


def test_delivery_sends_each_message_once_per_notifier_and_a_failed_one_again_on_the_retry(mlops_home):
    state = incidents.empty()
    _run(state, BREACHED, 0)
    incidents.save("churn", state)
    sent: list[tuple[str, str]] = []
    failing = {"slack"}

    def send(key, message):
        if key in failing:
            raise ConnectionError("slack is down")
        sent.append((key, message["id"]))

    with pytest.raises(incidents.DeliveryError, match="slack is down") as raised:
        incidents.deliver("churn", ["webhook:hook", "slack"], send)
    assert raised.value.left == [state["outbox"][0]["id"]]
    assert sent == [("webhook:hook", state["outbox"][0]["id"])]
    failing.clear()
    delivered, left = incidents.deliver("churn", ["webhook:hook", "slack"], send)  # the retry
    assert sent == [("webhook:hook", state["outbox"][0]["id"]), ("slack", state["outbox"][0]["id"])]
    assert delivered == [state["outbox"][0]["id"]] and left == []
    assert incidents.load("churn")["outbox"] == [] and "silence" in incidents.load("churn")["open"]
    assert incidents.deliver("churn", ["webhook:hook", "slack"], send) == ([], [])  # a second retry sends nothing
    assert len(sent) == 2


def test_a_retried_run_reopens_nothing_and_sends_nothing_new(mlops_home):
    """The whole task twice, as a retry does it: decide and save, then deliver."""
    sent = []
    for _ in range(2):
        state = incidents.load("churn")
        _run(state, BREACHED, 0)
        incidents.save("churn", state)
        incidents.deliver("churn", ["webhook:hook"], lambda key, message: sent.append(message["id"]))
    assert len(sent) == 1


def test_a_delivery_without_settling_leaves_the_message_for_the_other_notifiers(mlops_home):
    state = incidents.empty()
    _run(state, BREACHED, 0)
    incidents.save("churn", state)
    message_id = state["outbox"][0]["id"]
    sent = []
    incidents.deliver("churn", ["webhook:hook"], lambda k, m: sent.append((k, m["id"])), only=[message_id],
                      settle=False)  # fmt: skip
    incidents.deliver("churn", ["webhook:hook", "slack"], lambda k, m: sent.append((k, m["id"])))
    assert sent == [("webhook:hook", message_id), ("slack", message_id)]  # the webhook once, then slack
    assert incidents.load("churn")["outbox"] == []


def test_without_notifiers_the_outbox_empties_and_the_incident_stays(mlops_home):
    state = incidents.empty()
    _run(state, BREACHED, 0)
    incidents.save("churn", state)
    assert incidents.deliver("churn", [], lambda k, m: None) == ([state["outbox"][0]["id"]], [])
    assert incidents.load("churn")["outbox"] == [] and "silence" in incidents.load("churn")["open"]


def test_the_state_survives_a_restart_as_a_file_under_the_artifact_root(mlops_home):
    from airflow_mlops import layout

    state = incidents.empty()
    _run(state, BREACHED, 0)
    incidents.save("churn", state)
    assert layout.incidents_uri("churn").startswith(layout.artifact_root())
    assert incidents.load("churn") == state
    assert incidents.load("other") == incidents.empty()
