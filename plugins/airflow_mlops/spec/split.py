"""The ``split`` section: train / validation / test ratios and the split method."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from airflow_mlops.spec.base import Strict

SplitName = Literal["train", "validation", "test"]


def _default_ratios() -> dict[SplitName, float]:
    return {"train": 0.75, "test": 0.25}


class SplitSpec(Strict):
    """Train / validation / test split.

    - ``hash`` (default): each row goes by a salted hash of ``key`` (default: the id column;
      without an id, the row's fingerprint: its feature and label values, see
      ``core.io.row_fingerprint``). A key keeps its split across reruns and as data grows, so a
      champion is never tested on rows it trained on; rows sharing a key (a customer, a group,
      or identical rows) stay together.
    - ``random``: seeded shuffle; ``stratified``: seeded, keeping label shares in each split.
    - ``time``: the oldest rows train, the newest test (by ``time_column``).
    """

    method: Literal["hash", "random", "stratified", "time"] = "hash"
    ratios: dict[SplitName, float] = Field(default_factory=lambda: _default_ratios())
    seed: int = Field(default=42, description="Salt of the hash, or seed of random/stratified splits.")
    key: str | None = Field(
        default=None,
        description="hash: the column hashed (default data.id_column; without an id, a fingerprint of each "
        "row's feature and label values).",
    )
    time_column: str | None = None

    @model_validator(mode="after")
    def _ratios_add_up(self) -> SplitSpec:
        if any(value < 0 for value in self.ratios.values()):
            raise ValueError(f"split ratios must not be negative: {self.ratios}")
        if self.ratios.get("train", 0) <= 0 or self.ratios.get("test", 0) <= 0:
            raise ValueError(f"split ratios need train > 0 and test > 0: {self.ratios}")
        total = sum(self.ratios.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split ratios must add up to 1, they add up to {total:g}: {self.ratios}")
        if self.method == "time" and not self.time_column:
            raise ValueError("split.method 'time' needs split.time_column")
        return self
