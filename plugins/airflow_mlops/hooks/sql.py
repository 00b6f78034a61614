"""SQL sources: an Airflow connection of a SQL database becomes a SQLAlchemy engine.

Any connection whose hook is a common.sql ``DbApiHook`` works (``postgres`` is installed with
the package); the engine goes to ``core.data.sql_source``, which never sees Airflow. The
connection's password stays inside the engine: errors name the connection id only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _add_hint(conn_id: str) -> str:
    variable = "AIRFLOW_CONN_" + conn_id.upper().replace("-", "_")
    return (
        f"create it: airflow connections add {conn_id} --conn-uri 'postgresql://USER:PASSWORD@HOST:5432/DATABASE' "
        f"(or set the environment variable {variable})"
    )


@contextmanager
def sql_engine(conn_id: str) -> Iterator[Any]:
    """A SQLAlchemy engine for ``conn_id``, disposed of (its pooled connections closed) on exit."""
    from airflow.providers.common.sql.hooks.sql import DbApiHook
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from airflow_mlops.core.data.sql_source import SqlSourceError

    where = f"Airflow connection '{conn_id}' (data.source.sql.conn_id)"
    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise SqlSourceError(f"{where} does not exist; {_add_hint(conn_id)}") from None
    try:
        hook = connection.get_hook()
    except Exception as exc:  # an unknown type, or its provider is not installed
        raise SqlSourceError(
            f"{where} of type '{connection.conn_type}' has no usable hook ({type(exc).__name__}); use a SQL "
            "database type such as postgres (its provider package must be installed)"
        ) from None
    if not isinstance(hook, DbApiHook):
        raise SqlSourceError(
            f"{where} is of type '{connection.conn_type}', not a SQL database (its hook is no common.sql "
            "DbApiHook); use e.g. a postgres connection"
        )
    engine = hook.get_sqlalchemy_engine()
    try:
        yield engine
    finally:
        engine.dispose()
