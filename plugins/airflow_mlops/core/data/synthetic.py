"""Synthetic data for the example use cases: dated batches, deterministic from a seed.

``drift`` is a knob in [0, 1+]: 0 gives the reference distribution; larger values
shift numeric means, reweight categories and bend the label relationship, so a
model trained before the shift is measurably worse after it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from airflow_mlops.core.io import tables
from airflow_mlops.layout import join

PLANS = ["basic", "standard", "premium"]
REGIONS = ["north", "south", "east", "west"]
PAYMENTS = ["card", "bank_transfer", "invoice"]


def churn_batch(rows: int, seed: int, drift: float = 0.0, batch_date: dt.date | None = None) -> pd.DataFrame:
    """Customer-churn batch: 4 numeric and 3 categorical features, ~5% missing, a 0/1 label."""
    _check_knobs(rows, drift)
    rng = np.random.default_rng(seed)
    plan_weights = np.array([0.5, 0.35, 0.15]) * (1 - drift) + np.array([0.15, 0.35, 0.5]) * drift
    plan_weights = np.clip(plan_weights, 0.01, None)
    plan = rng.choice(PLANS, size=rows, p=plan_weights / plan_weights.sum())
    region = rng.choice(REGIONS, size=rows, p=[0.3, 0.3, 0.2, 0.2])
    payment = rng.choice(PAYMENTS, size=rows, p=[0.6, 0.25, 0.15])
    tenure = np.clip(rng.gamma(2.0, 12.0, rows) * (1 - 0.5 * min(drift, 1.0)), 0, 120).round()
    plan_price = pd.Series(plan).map({"basic": 20.0, "standard": 45.0, "premium": 80.0}).to_numpy()
    monthly = np.clip(plan_price + rng.normal(5.0 + 25.0 * drift, 8.0, rows), 5.0, None)
    support_calls = rng.poisson(1.2 + 2.5 * drift, rows).astype(float)
    usage = np.abs(rng.normal(30.0 + 40.0 * drift, 12.0, rows))

    # Churn propensity; ``drift`` also changes how usage relates to churn (concept drift).
    logit = (
        -0.5
        - 0.07 * tenure
        + 0.04 * (monthly - 45.0)
        + 0.7 * support_calls
        + (0.03 - 0.08 * drift) * (usage - 30.0)
        + np.where(payment == "invoice", 0.9, 0.0)
        + np.where(region == "south", 0.5, 0.0)
    )
    label = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype("int64")

    frame = pd.DataFrame(
        {
            "customer_id": [f"c{seed:05d}-{i:07d}" for i in range(rows)],
            "tenure_months": tenure,
            "monthly_charges": monthly.round(2),
            "support_calls": support_calls,
            "usage_gb": usage.round(3),
            "plan": plan,
            "region": region,
            "payment_method": payment,
            "churned": label,
        }
    )
    # About 5% missing values in two numeric columns and one categorical column.
    for column in ("monthly_charges", "usage_gb", "payment_method"):
        mask = rng.random(rows) < 0.05
        frame[column] = frame[column].astype("object" if column == "payment_method" else "float64")
        frame.loc[mask, column] = None
    frame["payment_method"] = frame["payment_method"].astype("string")
    for column in ("plan", "region"):
        frame[column] = frame[column].astype("string")
    if batch_date is not None:
        frame.insert(1, "event_date", pd.Timestamp(batch_date))
    return frame


TEAMS = ["billing", "tech support", "sales", "accounts/security"]
CHANNELS = ["email", "phone", "chat"]
TIERS = ["free", "pro", "enterprise"]


def tickets_batch(rows: int, seed: int, drift: float = 0.0, batch_date: dt.date | None = None) -> pd.DataFrame:
    """Support-ticket routing: which of four teams (string labels, one with a space, one with a
    slash) a ticket goes to, from columns whose names hold spaces, a slash, a dot and a dash."""
    _check_knobs(rows, drift)
    rng = np.random.default_rng(seed)
    channel_weights = np.array([0.5, 0.2, 0.3]) * (1 - min(drift, 1.0)) + np.array([0.15, 0.25, 0.6]) * min(drift, 1.0)
    channel = rng.choice(CHANNELS, size=rows, p=channel_weights / channel_weights.sum())
    tier = rng.choice(TIERS, size=rows, p=[0.5, 0.35, 0.15])
    words = np.clip(rng.gamma(3.0, 40.0 * (1 + drift), rows), 3, None).round()
    wait = np.abs(rng.normal(12.0 + 20.0 * drift, 8.0, rows)).round(1)
    age = np.clip(rng.normal(38.0, 12.0, rows), 18, 90).round()
    prior = rng.poisson(1.5, rows).astype(float)
    sentiment = np.clip(rng.normal(-0.1 - 0.3 * drift, 0.4, rows), -1, 1).round(3)
    scores = np.stack(
        [
            0.8 * (tier == "free") + 0.01 * (age - 38) + 0.6 * (channel == "email"),  # billing
            0.006 * words + 0.5 * (tier == "enterprise") - 0.5 * sentiment,  # tech support
            -0.4 * prior + 0.9 * (channel == "chat") + 0.3 * (tier == "free"),  # sales
            0.05 * wait + 0.4 * prior - 0.8 * (channel == "chat"),  # accounts/security
        ],
        axis=1,
    )
    scores = scores + rng.gumbel(size=scores.shape) * 0.7
    frame = pd.DataFrame(
        {
            "ticket id": [f"t{seed:05d}-{i:07d}" for i in range(rows)],
            "ticket length (words)": words,
            "wait time/min": wait,
            "customer.age": age,
            "prior tickets": prior,
            "sentiment-score": sentiment,
            "channel": pd.array(channel, dtype="string"),
            "product tier": pd.array(tier, dtype="string"),
            "team": pd.array(np.asarray(TEAMS)[scores.argmax(axis=1)], dtype="string"),
        }
    )
    for column in ("wait time/min", "product tier"):  # about 5% missing
        frame.loc[rng.random(rows) < 0.05, column] = None
    if batch_date is not None:
        frame.insert(1, "event_date", pd.Timestamp(batch_date))
    return frame


DISTRICTS = ["old town", "harbour", "north hill", "riverside"]


def houses_batch(rows: int, seed: int, drift: float = 0.0, batch_date: dt.date | None = None) -> pd.DataFrame:
    """House prices (regression) with no id column: nothing but the features and the price."""
    _check_knobs(rows, drift)
    rng = np.random.default_rng(seed)
    district = rng.choice(DISTRICTS, size=rows, p=[0.2, 0.25, 0.3, 0.25])
    area = np.clip(rng.normal(95.0 * (1 + 0.3 * drift), 35.0, rows), 20, None).round(1)
    rooms = np.clip(np.round(area / 28 + rng.normal(0, 0.8, rows)), 1, None)
    age = np.clip(rng.gamma(2.0, 15.0, rows), 0, 150).round()
    garden = rng.random(rows) < 0.4
    premium = (
        pd.Series(district).map({"old town": 1.4, "harbour": 1.25, "north hill": 1.0, "riverside": 1.1}).to_numpy()
    )
    value = area * 3200 * premium * (1 + 0.5 * drift) + 9000 * rooms + 25000 * garden
    price = value * np.clip(1 - 0.004 * age, 0.4, None) * rng.lognormal(0, 0.08, rows)  # always positive
    frame = pd.DataFrame(
        {
            "area_m2": area,
            "rooms": rooms,
            "building_age": age,
            "district": pd.array(district, dtype="string"),
            "garden": pd.array(np.where(garden, "yes", "no"), dtype="string"),
            "price": price.round(-2),
        }
    )
    frame.loc[rng.random(rows) < 0.05, "building_age"] = np.nan
    if batch_date is not None:
        frame.insert(0, "listed_on", pd.Timestamp(batch_date))
    return frame


def _check_knobs(rows: int, drift: float) -> None:
    if rows <= 0:
        raise ValueError(f"rows must be positive, got {rows}")
    if drift < 0:
        raise ValueError(f"drift must be >= 0, got {drift}")


GENERATORS: dict[str, Callable[..., pd.DataFrame]] = {
    "churn": churn_batch,
    "tickets": tickets_batch,
    "houses": houses_batch,
}


@dataclass(frozen=True)
class LandedBatch:
    uri: str
    rows: int
    batch_date: str
    drift: float


def land_batch(
    generator: str,
    directory: str,
    batch_date: dt.date,
    rows: int,
    seed: int,
    drift: float = 0.0,
    include_label: bool = True,
    label: str = "churned",
) -> LandedBatch:
    """Generate one dated batch and write it atomically into a landing directory."""
    try:
        make = GENERATORS[generator]
    except KeyError:
        raise ValueError(f"unknown generator '{generator}'; known: {sorted(GENERATORS)}") from None
    frame = make(rows=rows, seed=seed, drift=drift, batch_date=batch_date)
    if not include_label:
        frame = frame.drop(columns=[label])
    suffix = f"-drift{drift:g}" if drift else ""
    uri = join(directory, f"batch-{batch_date:%Y%m%d}-s{seed}{suffix}.parquet")
    tables.write_parquet(frame, uri)
    return LandedBatch(uri=uri, rows=len(frame), batch_date=batch_date.isoformat(), drift=drift)
