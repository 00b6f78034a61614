"""Which move made a version champion (a bake starts only after a promotion), and the shadow queue's bound."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from airflow_mlops.core.operations.prediction_log.readers import is_shadow_file
from airflow_mlops.serving.rollout import record_of_move
from airflow_mlops.serving.shadow import ShadowScorer

pytestmark = pytest.mark.unit


def test_the_move_to_a_version_is_the_pending_record_or_the_newest_in_the_history():
    history = [{"id": "a", "to_version": "2"}, {"id": "b", "to_version": "1", "rollback": True},
               {"id": "c", "to_version": "2"}]  # fmt: skip
    tags = {"promotion_history": json.dumps(history)}
    assert record_of_move(tags, "2")["id"] == "c" and record_of_move(tags, "1")["rollback"]
    assert record_of_move(tags, "9") is None
    pending = {"id": "d", "to_version": "3", "rollback": True}
    assert record_of_move({**tags, "promotion_pending": json.dumps(pending)}, "3")["id"] == "d"


def test_shadow_files_are_told_apart_by_name():
    assert is_shadow_file(
        "s3://b/churn/prediction_log/date=2026-12-01/part-20261201T010203000000-shadow-h-1-000001.parquet"
    )
    assert not is_shadow_file("/x/date=2026-12-01/part-20261201T010203000000-serving-shadow-1-000001.parquet")


class _Model:
    """A challenger stand-in that blocks until released."""

    def __init__(self, version: str) -> None:
        self.version, self.class_labels, self.release = version, None, threading.Event()

    def predict(self, feeds):
        self.release.wait(10)
        return np.zeros(1), None, None


def test_the_shadow_queue_is_bounded_and_never_blocks_the_caller():
    scorer = ShadowScorer(share=1.0, queue_requests=3, prediction_logger=None)
    challenger, champion = _Model("2"), SimpleNamespace(version="1")
    scorer.model = challenger
    scorer.start()
    inputs = SimpleNamespace(feeds={}, features={}, ids=None, rows=1)
    queued = [scorer.offer(champion, f"r{i}", inputs, None) for i in range(10)]
    # The thread holds one (blocked), three wait: the rest are dropped at once.
    assert 3 <= sum(queued) <= 4 and scorer.dropped_requests == 10 - sum(queued)
    assert not scorer.offer(SimpleNamespace(version="2"), "same", inputs, None)  # the challenger is the champion
    challenger.release.set()
    scorer.close()
    assert scorer.scored_requests == sum(queued)
