"""The host name Airflow records for a task (``[core] hostname_callable``) in the native production stack.

Two Celery workers on one machine share its host name; each native role sets
``AIRFLOW_MLOPS_HOSTNAME`` to its compose service name (``airflow-worker-1`` ...) so the
task instances say which worker ran them. Elsewhere it is Airflow's default (the FQDN).
"""

from __future__ import annotations

import os
import socket


def native_hostname() -> str:
    return os.environ.get("AIRFLOW_MLOPS_HOSTNAME") or socket.getfqdn()
