"""The run-notes listener: registered by its plugin, harmless to the scheduler whatever happens."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from airflow_mlops.notifiers import run_notes

pytestmark = pytest.mark.unit


def test_the_plugin_registers_the_dag_run_listeners():
    assert run_notes.RunNotesPlugin.listeners == [run_notes]
    for hook in ("on_dag_run_success", "on_dag_run_failed"):
        assert getattr(getattr(run_notes, hook), "airflow_impl", None) is not None, hook  # pluggy's marker


def test_a_failure_inside_the_listener_is_logged_and_never_raised(caplog):
    broken = SimpleNamespace(dag_id="d", run_id="r", state="failed", note=None)  # no database behind it
    assert run_notes.write_note(broken) is None  # type: ignore[arg-type]
    assert "could not write the note of d/r" in caplog.text
