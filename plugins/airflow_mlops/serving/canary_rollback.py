"""The canary's rollback of the ``champion`` alias, in a child process of the serving app.

``python -m airflow_mlops.serving.canary_rollback SPEC BAD_VERSION TO_VERSION MOVE_ID REASON FIGURES``, the
tracking URI in ``$AIRFLOW_MLOPS_CANARY_TRACKING_URI`` (it may hold a password: never in argv)

Run by ``serving.canary`` when a baking champion crossed a threshold: the MLflow client (and the
pandas and SciPy it brings) stays out of the serving process. Moves the alias back with
``core.registry.promotion.rollback`` (the same checks and records as any rollback): ``by`` is
``canary``, the reason names the crossed thresholds, the record carries ``automatic: true`` and the
figures. Keyed by the version rolled back and the id of the promotion that made it champion (``run``), so
several workers roll it back once, and the same version promoted again later bakes anew; when the
alias is no longer on the bad version (someone moved it meanwhile) nothing moves. The ``challenger``
alias is removed when it names the bad version. Exit status 0 when the alias is back (or was moved
by someone else), 1 when the rollback was refused.
"""

from __future__ import annotations

import json
import os
import sys

CANARY_BY = "canary"


def main(argv: list[str]) -> int:
    from airflow_mlops.core.registry import promotion
    from airflow_mlops.core.registry.client import CHALLENGER_ALIAS, Registry
    from airflow_mlops.spec import load_spec

    spec_path, bad, to, move, reason, figures = argv
    tracking_uri = os.environ.get("AIRFLOW_MLOPS_CANARY_TRACKING_URI", "")
    if not tracking_uri:
        print("AIRFLOW_MLOPS_CANARY_TRACKING_URI is not set: no registry to roll back in", file=sys.stderr)
        return 1
    name = load_spec(spec_path).registered_model_name
    registry = Registry(tracking_uri)
    current = registry.champion(name)
    key = f"canary/{name}/v{bad}/{move}"
    done = next((r for r in reversed(registry.promotion_history(name)) if r.get("run") == key), None)
    if done is None and (current is None or str(current.version) != str(bad)):
        print(f"{name}: the champion is v{None if current is None else current.version}, no longer v{bad}: not moved")
        return 0
    try:
        record = promotion.rollback(
            registry, name, by=CANARY_BY, reason=f"automatic, {reason}", to_version=str(to), run=key,
            extra={"automatic": True, "figures": json.loads(figures)},
        )  # fmt: skip
    except promotion.RollbackError as exc:
        print(f"rollback refused: {exc}", file=sys.stderr)
        return 1
    aliases = registry.client.get_registered_model(name).aliases or {}
    if str(aliases.get(CHALLENGER_ALIAS, "")) == str(bad):
        registry.client.delete_registered_model_alias(name, CHALLENGER_ALIAS)
    print(f"champion of {name}: v{record['from_version']} -> v{record['to_version']} ({record['reason']})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
