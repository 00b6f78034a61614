"""How a serving process is configured: its settings, its bearer tokens, its logging.

``airflow-mlops serve`` makes a ``ServeConfig`` from its arguments and hands it to the uvicorn
workers through ``CONFIG_ENV`` (the tokens stay in ``TOKEN_ENV``); each worker reads it back
in ``serving.app.app_from_environment``, which also sets the process up (``configure_logging``,
``keep_pandas_out_of_pyarrow``). Standard library only (and ``core.redaction``): the serve
command's own process imports this module, not the app.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass, field

from airflow_mlops.core.redaction import install_record_factory

CONFIG_ENV = "AIRFLOW_MLOPS_SERVE_CONFIG"
TOKEN_ENV = "AIRFLOW_MLOPS_SERVE_TOKEN"
MIN_TOKEN_CHARS = 16
# Variables whose values are secrets wherever they appear in a message.
SECRET_ENV = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


@dataclass
class ServeConfig:
    """How one serving process runs; passed to uvicorn workers through ``CONFIG_ENV`` (tokens excluded)."""

    spec_path: str
    tracking_uri: str
    poll_seconds: float = 5.0
    max_rows: int = 10_000
    max_body_bytes: int = 16 * 1024 * 1024
    log_predictions: bool = True
    log_flush_rows: int = 100_000
    log_flush_seconds: float = 5.0
    onnx_threads: int = 1
    require_token: bool = True
    freeze_gc: bool = False  # the serve command turns it on; an app inside a task or a test leaves the GC alone
    tokens: tuple[str, ...] = field(default=(), repr=False)

    def to_env(self) -> str:
        data = asdict(self)
        data.pop("tokens")
        return json.dumps(data)

    @classmethod
    def from_env(cls) -> ServeConfig:
        raw = os.environ.get(CONFIG_ENV)
        if not raw:
            raise RuntimeError(f"{CONFIG_ENV} is not set: start the app with `airflow-mlops serve <spec>`")
        config = cls(**json.loads(raw))
        config.tokens = tokens_from_env()
        config.check()
        return config

    def check(self) -> None:
        if self.require_token and not self.tokens:
            raise RuntimeError(
                f"no bearer token: set {TOKEN_ENV} (comma-separated for several) or start with --no-auth"
            )
        short = [i for i, token in enumerate(self.tokens, start=1) if len(token) < MIN_TOKEN_CHARS]
        if self.require_token and short:  # named by position: the value itself is never shown
            raise RuntimeError(
                f"{TOKEN_ENV}: token {', '.join(map(str, short))} of {len(self.tokens)} is shorter than "
                f"{MIN_TOKEN_CHARS} characters; use a random one (e.g. `openssl rand -hex 24`)"
            )


def tokens_from_env() -> tuple[str, ...]:
    return tuple(t.strip() for t in os.environ.get(TOKEN_ENV, "").split(",") if t.strip())


def secret_values(config: ServeConfig) -> tuple[str, ...]:
    """Values masked wherever they appear in a message: the bearer tokens, MLflow's and AWS's secrets,
    the password in the tracking URI (``redact`` masks URL userinfo too; this also catches it quoted)."""
    from urllib.parse import urlsplit

    values = [*config.tokens, *(os.environ.get(name) for name in SECRET_ENV)]
    with contextlib.suppress(ValueError):  # not a URL: nothing in it to mask
        values.append(urlsplit(config.tracking_uri).password)
    return tuple(v for v in values if v)


def configure_logging(config: ServeConfig) -> None:
    """The serving process's logging: INFO for the app, WARNING for HTTP clients (httpx would log
    every alias poll with its full URL), every record redacted as it is made."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    for name in ("httpx", "httpcore", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    install_record_factory(secret_values(config))


def keep_pandas_out_of_pyarrow() -> None:
    """Let pyarrow settle on "no pandas" in this process, so the prediction log never imports it.

    pyarrow looks for pandas once, at its first conversion (any ``pa.array``), and imports it
    when it is installed: tens of MB in every worker, for a log that holds no pandas object.
    The first look is made here while ``import pandas`` fails; pyarrow's lazy checks then answer
    "not a pandas object" for good, while its pandas conversions (``to_pandas``) would still
    import it when called. Nothing to do when pandas is already imported.
    """
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    blocker = _NoPandas()
    sys.meta_path.insert(0, blocker)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(blocker)


class _NoPandas:
    """An import finder under which ``import pandas`` fails (``keep_pandas_out_of_pyarrow``)."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
