"""The landing payloads of a run's triggering Asset events, sorted and checked before use.

Anyone allowed to create asset events through Airflow's REST API can write a payload, so a
payload is data from outside: a ``claim_uri`` must be a claim folder of the pipeline's lake
(``<lake>/_claims/<lake folder>/<claim id>``) and every ``claimed`` URI a file of that lake,
else ``EventPayloadError`` names the URI. Pure (no I/O): ``operators.base.acknowledge_claims``
turns the error into a task failure without retry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from airflow_mlops.core.landing.records import CLAIMS


class EventPayloadError(ValueError):
    """A triggering event's payload that names something outside the pipeline's lake, or is malformed."""


@dataclass
class TriggeringPayloads:
    """What a run's triggering events carry: claims (by id, first payload kept), every claim payload
    (duplicates included: each one is checked), plain ``claimed`` URIs, and other events."""

    claims: dict[str, dict[str, Any]] = field(default_factory=dict)
    every_claim: list[dict[str, Any]] = field(default_factory=list)
    uris: list[str] = field(default_factory=list)
    other_events: int = 0


def sort_payloads(payloads: Iterable[Any]) -> TriggeringPayloads:
    """Sort event payloads (``event.extra["payload"]``) into claims, claimed URIs and others."""
    found = TriggeringPayloads()
    for payload in payloads:
        if not isinstance(payload, dict):
            found.other_events += 1
        elif payload.get("claim_id") and payload.get("claim_uri"):
            found.claims.setdefault(str(payload["claim_id"]), payload)
            found.every_claim.append(payload)
        elif payload.get("claimed"):
            found.uris.extend(claimed_list(payload))
        else:
            found.other_events += 1
    return found


def check_in_lake(found: TriggeringPayloads, lake: str) -> None:
    """Every claimed URI a file of ``lake``, every claim a claim folder of it; else ``EventPayloadError``."""
    for uri in found.uris:
        _check_uri(uri, lake)
    for payload in found.every_claim:
        _check_claim(str(payload["claim_id"]), payload, lake)


def claimed_list(payload: dict[str, Any]) -> list[str]:
    """A payload's ``claimed`` URIs, which must be a list of strings."""
    claimed = payload.get("claimed") or []
    if not isinstance(claimed, list) or not all(isinstance(uri, str) for uri in claimed):
        raise EventPayloadError(f"landing event payload with a 'claimed' that is not a list of URIs: {claimed!r}")
    return claimed


def _relative_parts(uri: str, root: str) -> list[str] | None:
    """The segments of ``uri`` below ``root``; None when it is not below it or has '.', '..' or ''."""
    prefix = root.rstrip("/") + "/"
    if not uri.startswith(prefix):
        return None
    parts = uri[len(prefix) :].split("/")
    return None if any(part in ("", ".", "..") for part in parts) else parts


def _check_uri(uri: str, lake: str) -> None:
    parts = _relative_parts(uri, lake)
    if not parts or parts[0].startswith(("_", ".")):
        raise EventPayloadError(f"refusing claimed URI {uri!r}: not a file of the pipeline's lake {lake}")


def _check_claim(claim_id: str, payload: dict[str, Any], lake: str) -> None:
    """A claim folder is ``<lake>/_claims/<lake folder>/<claim id>``; its files are in the lake."""
    uri = str(payload["claim_uri"])
    parts = _relative_parts(uri, f"{lake.rstrip('/')}/{CLAIMS}")
    if not parts or len(parts) != 2 or parts[1] != claim_id or any(p.startswith(("_", ".")) for p in parts):
        raise EventPayloadError(
            f"refusing landing claim {claim_id!r}: claim_uri {uri!r} is not a claim folder of the pipeline's "
            f"lake ({lake}/{CLAIMS}/<lake folder>/<claim id>)"
        )
    for claimed in claimed_list(payload):
        _check_uri(claimed, lake)
