"""One ONNX Runtime call for the requests that reach the model in the same event-loop iteration.

Requests that arrive together (the event loop read them in one pass) share one model run,
whose fixed cost (~100 us here) dominates small requests. Nothing waits for a batch to fill:
the batch runs as soon as the requests already ready have joined it, so a lone request pays
one extra loop turn. A batch whose joint run fails is run again request by request, so one
bad request fails no other.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import numpy as np

from airflow_mlops.serving.model import Prediction, ServedModel
from airflow_mlops.serving.payload import ModelInputs

logger = logging.getLogger("airflow_mlops.serving")

_Item = tuple[ServedModel, ModelInputs, "asyncio.Future[Any]"]


class ModelRunBatcher:
    """Collects the requests of one loop iteration and runs them together; ``runs`` counts model runs."""

    def __init__(self) -> None:
        self.runs = 0
        self._batch: list[_Item] = []
        self._scheduled = False

    async def predict(self, model: ServedModel, inputs: ModelInputs) -> Prediction:
        """Predict ``inputs`` with ``model``, batched with the requests that reached this point in this iteration."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._batch.append((model, inputs, future))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._run_batch)
        result: Prediction = await future
        return result

    def _run_batch(self) -> None:
        batch, self._batch, self._scheduled = self._batch, [], False
        groups: dict[int, list[_Item]] = {}
        for item in batch:
            groups.setdefault(id(item[0]), []).append(item)  # a swap may split a batch between versions
        for items in groups.values():
            self.runs += 1
            model = items[0][0]
            if len(items) > 1:
                feeds = {name: np.concatenate([i[1].feeds[name] for i in items]) for name in items[0][1].feeds}
                try:
                    outputs = model.predict(feeds)
                except Exception:  # one bad request must not fail the others: run each alone
                    logger.warning("batched prediction failed; predicting each request alone", exc_info=True)
                else:
                    start = 0
                    for _, inputs, future in items:
                        stop = start + inputs.rows
                        _settle(future, tuple(None if o is None else o[start:stop] for o in outputs))
                        start = stop
                    continue
            for _, inputs, future in items:
                try:
                    _settle(future, model.predict(inputs.feeds))
                except Exception as exc:
                    if not future.done():
                        future.set_exception(exc)


def _settle(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():  # the client may have gone away and its task been cancelled
        future.set_result(result)
