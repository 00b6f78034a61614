"""The registered model takes the user's raw rows: the input contract travels inside it.

The trained Pipeline expects model inputs (``training.feature_frame``: categories as text
with "" for missing, derived features computed, category clean-up applied). A user who
loads the registered version the plain MLflow way (``mlflow.pyfunc.load_model(uri)
.predict(rows)``) has raw rows: NaN or None for a missing category, no derived columns. So
the version logged to MLflow is ``Pipeline([("inputs", ModelInputTransformer), ("model",
trained)])``: the first step turns raw rows into model inputs exactly as training, batch
scoring and the serving app do, and gives the same answers as the serving app.

The transformer holds only plain lists (the contract), so skops serializes it without
pickle; its type is in the registry's trust policy. Inside the package, ``unwrap`` gives the
trained Pipeline back (evaluation, ONNX export and scoring build their inputs themselves).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline

from airflow_mlops.core.model.features import InputContract
from airflow_mlops.core.model.training import feature_frame

INPUTS_STEP = "inputs"
MODEL_STEP = "model"


class ModelInputTransformer(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Raw rows -> model inputs, by the contract of the spec the model was trained with.

    :param contract: ``InputContract.as_dict()`` (plain lists, so skops can store it).
    """

    def __init__(self, contract: dict[str, Any] | None = None) -> None:
        self.contract = contract

    def fit(self, frame: Any, labels: Any = None) -> ModelInputTransformer:
        return self

    def transform(self, frame: Any) -> pd.DataFrame:
        if self.contract is None:
            raise ValueError("ModelInputTransformer has no contract")
        if not isinstance(frame, pd.DataFrame):
            frame = pd.DataFrame(frame)
        return feature_frame(frame, InputContract.from_dict(self.contract))

    def __sklearn_is_fitted__(self) -> bool:
        return True  # nothing to learn: the contract is given


def wrap(trained: Pipeline, contract: InputContract) -> Pipeline:
    """The model as it is registered: raw rows in, the trained Pipeline's answers out."""
    return Pipeline([(INPUTS_STEP, ModelInputTransformer(contract.as_dict())), (MODEL_STEP, trained)])


def unwrap(model: Any) -> Any:
    """The trained Pipeline inside a registered model (a model logged before the wrapper: itself)."""
    wrapped = isinstance(model, Pipeline) and len(model.steps) == 2 and model.steps[0][0] == INPUTS_STEP
    return model.steps[1][1] if wrapped and isinstance(model.steps[0][1], ModelInputTransformer) else model
