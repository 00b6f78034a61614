"""Shadow scoring: the registry's ``challenger`` scores a share of live requests, off the request path.

``rollout.shadow`` in the spec turns it on. After the champion answered a request (its answer and
its log row made as without shadow), ``offer`` puts the request's decoded inputs on a bounded
queue, for ``share`` of the requests, and returns at once; a daemon thread takes them, runs the
challenger's ONNX graph (ONNX Runtime releases the GIL while it computes) and appends its rows to
a prediction logger of their own (source ``shadow``: file names ``part-<time>-shadow-...``, column
``source_uri`` 'shadow', ``model_version`` the challenger's, ``request_id`` the request's, so
delayed labels join both). Readers of a champion's rows leave shadow rows out
(``prediction_log.readers.read_log_file``), so a challenger promoted later is never judged on rows
it answered nobody. A request arriving at a full queue is not shadowed, and counted
(``dropped_requests``, on /metrics); the caller never waits for the challenger and never sees it.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_mlops.core.operations.prediction_log import PredictionLogger
    from airflow_mlops.serving.model import ServedModel
    from airflow_mlops.serving.payload import ModelInputs

logger = logging.getLogger("airflow_mlops.serving")

_STOP = object()


class ShadowScorer:
    """A bounded queue of requests the challenger scores in a thread of its own.

    :param share: the share of requests shadowed (0 < share <= 1).
    :param queue_requests: requests waiting at most; more are dropped and counted.
    :param prediction_logger: where the challenger's rows go (source ``shadow``), or None.
    """

    def __init__(self, share: float, queue_requests: int, prediction_logger: PredictionLogger | None) -> None:
        self.share = share
        self.model: ServedModel | None = None  # the challenger; None: nothing to shadow
        self.prediction_logger = prediction_logger
        self.offered = 0
        self.scored_requests = 0
        self.scored_rows = 0
        self.dropped_requests = 0
        self.failed_requests = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_requests)
        self._random = random.Random()
        self._thread: threading.Thread | None = None

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def offer(self, champion: ServedModel, request_id: str, inputs: ModelInputs, client_id: str | None) -> bool:
        """Queue the request for the challenger (for ``share`` of requests); never blocks. True when queued."""
        challenger = self.model
        if challenger is None or challenger.version == champion.version:
            return False
        if self.share < 1.0 and self._random.random() >= self.share:
            return False
        self.offered += 1
        try:
            self._queue.put_nowait((challenger, request_id, inputs, client_id))
        except queue.Full:
            self.dropped_requests += 1
            return False
        return True

    def start(self) -> ShadowScorer:
        if self._thread is None:
            if self.prediction_logger is not None:
                self.prediction_logger.start()
            self._thread = threading.Thread(target=self._run, name="airflow-mlops-shadow", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            challenger, request_id, inputs, client_id = item
            try:
                predictions, scores, probabilities = challenger.predict(inputs.feeds)
            except Exception:  # a challenger that fails is the challenger's problem, never the caller's
                self.failed_requests += 1
                if self.failed_requests == 1 or self.failed_requests % 1000 == 0:
                    logger.warning("the challenger v%s failed to score a shadowed request (%d so far)",
                                   challenger.version, self.failed_requests, exc_info=True)  # fmt: skip
                continue
            self.scored_requests += 1
            self.scored_rows += inputs.rows
            if self.prediction_logger is not None:
                try:  # a log that cannot take the rows must not end the thread (the queue would only fill)
                    self.prediction_logger.append(
                        request_id, challenger.version, inputs.features, predictions, scores, inputs.ids,
                        probabilities=probabilities, classes=challenger.class_labels, client_request_id=client_id,
                    )  # fmt: skip
                except Exception:
                    self.failed_requests += 1
                    logger.warning("the challenger's rows of request %s were not logged", request_id, exc_info=True)

    def close(self, timeout: float = 10.0) -> None:
        """Score what is queued (within ``timeout``), stop the thread, close the shadow log."""
        running = False
        if self._thread is not None:
            try:
                self._queue.put(_STOP, timeout=timeout)
                self._thread.join(timeout)
            except queue.Full:  # the challenger cannot keep up: what is left is not scored (a daemon thread)
                logger.warning("shadow queue still full at shutdown: %d request(s) not scored", self.queued)
            running = self._thread.is_alive()
            self._thread = None
        if self.prediction_logger is not None and not running:
            self.prediction_logger.close()
        elif running:  # still appending: closing the log under it could lose or tear its last block
            logger.warning("the shadow thread did not stop within %.0f s; its log is left to the process exit", timeout)
