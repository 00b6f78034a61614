"""Library noise kept out of the task log while an airflow-mlops operator's ``execute`` runs.

Measured on a ``dag.test()`` of the churn training DAG (3,000 rows), before this module:

- when ``skops.io`` is first imported in a process (inside the task: a task-time import), skops
  lists the scipy.special ufuncs it trusts, and its ``whichmodule`` looks each one up with
  ``getattr`` on every module in ``sys.modules``; Airflow's deprecated modules
  (``airflow.utils.timezone``, ...) answer every such lookup with a ``DeprecatedImportWarning`` (a
  ``FutureWarning``): 1,159 warnings, 3,477 log lines, in the select task. A real worker runs each
  task in its own process, so every task that saves or loads a model with skops pays it again.
- Great Expectations logs about 220 INFO lines per context ("Skipping registering function ...").
- MLflow gives its loggers (and alembic's, SQLAlchemy's) a handler of its own on stderr, and
  prints "Created version ..." to stderr: the task supervisor logs every stderr line as an ERROR,
  so MLflow's INFO lines show red.

Inside ``quiet_libraries()``: those warnings are ignored (only those: any other warning, ours
included, is shown as before), the noisy loggers log WARNING and above, and MLflow's loggers and
prints go through the task's own logging at their own level. Everything is restored on exit.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

# (category, module the warning is attributed to): ignored inside execute. Each is a side effect
# of a library scanning modules, never something a pipeline author can act on.
LIBRARY_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    (FutureWarning, r"skops\.io\._utils"),  # whichmodule's getattr on Airflow's deprecated modules
    (DeprecationWarning, r"skops\.io\._utils"),
)
# Loggers that are chatty at INFO; WARNING and above still reach the log.
QUIET_LOGGERS: dict[str, int] = {
    "great_expectations": logging.WARNING,  # ~220 lines of docs-decorator and registry chatter per context
    "alembic": logging.WARNING,  # MLflow's database migrations on a SQLite store
    "sqlalchemy.engine": logging.WARNING,
    "matplotlib": logging.WARNING,  # "generated new fontManager"
}
# The loggers ``mlflow.utils.logging_utils._configure_mlflow_loggers`` gives MLflow's stderr handler.
MLFLOW_LOGGERS = ("mlflow", "alembic", "sqlalchemy.engine", "huey")


class _Scope(ExitStack):
    """What one ``quiet_libraries`` block changed, undone on exit."""

    mlflow_routed = False


_active: list[_Scope] = []  # the scope of the execute running now (one task per process)


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """Run the block with library noise filtered from the task log (see the module docstring)."""
    with _Scope() as stack:
        stack.enter_context(warnings.catch_warnings())
        for category, module in LIBRARY_WARNINGS:
            warnings.filterwarnings("ignore", category=category, module=module)
        for name, level in QUIET_LOGGERS.items():
            logger = logging.getLogger(name)
            if logging.NOTSET < logger.level < logging.INFO:
                continue  # someone set DEBUG on purpose: they want to see it
            stack.callback(logger.setLevel, logger.level)
            logger.setLevel(max(level, logger.level))
        # Some of their modules set INFO on their own logger when imported (in the block, as GX's
        # data_context.types.base does): the handlers drop what those loggers let through.
        quiet = _QuietFilter(QUIET_LOGGERS)
        for handler in logging.getLogger().handlers:
            handler.addFilter(quiet)
            stack.callback(handler.removeFilter, quiet)
        # MLflow imported inside the block leaves its loggers to the task's logging.
        if "MLFLOW_CONFIGURE_LOGGING" not in os.environ:
            os.environ["MLFLOW_CONFIGURE_LOGGING"] = "false"
            stack.callback(os.environ.pop, "MLFLOW_CONFIGURE_LOGGING", None)
        _active.append(stack)
        stack.callback(_active.remove, stack)
        if "mlflow.utils.logging_utils" in sys.modules:  # imported before the block: undo its handlers
            _route_mlflow(stack)
        yield


def route_mlflow_output() -> None:
    """Send MLflow's stderr output through the task's logging for the rest of the running execute.

    Called when a task is about to use MLflow (``MlopsBaseOperator.registry``): imports MLflow's
    logging module (the task needs MLflow anyway). Does nothing outside ``quiet_libraries``.
    """
    if _active and not _active[-1].mlflow_routed:
        _route_mlflow(_active[-1])


def _route_mlflow(stack: _Scope) -> None:
    from mlflow.utils import logging_utils

    stack.mlflow_routed = True
    stream = logging_utils.MLFLOW_LOGGING_STREAM
    for name in MLFLOW_LOGGERS:
        logger = logging.getLogger(name)
        own = [h for h in logger.handlers if getattr(h, "stream", None) is stream]
        if own:
            stack.callback(_restore, logger, list(logger.handlers), logger.propagate)
            logger.handlers = [h for h in logger.handlers if h not in own]
            logger.propagate = True
    # eprint() ("Successfully registered model ...") writes to this stream, which writes to stderr.
    had_own = "write" in vars(stream)
    previous = vars(stream).get("write")
    stream.write = _LineLogger(logging.getLogger("mlflow"))  # type: ignore[method-assign]  # this instance only
    stack.callback(_restore_write, stream, had_own, previous)


def _restore(logger: logging.Logger, handlers: list[logging.Handler], propagate: bool) -> None:
    logger.handlers = handlers
    logger.propagate = propagate


def _restore_write(stream: Any, had_own: bool, previous: Callable[[str], Any] | None) -> None:
    if had_own:
        stream.write = previous
    else:
        vars(stream).pop("write", None)


class _QuietFilter(logging.Filter):
    """Drop records of the quiet loggers (and their children) below their level."""

    def __init__(self, levels: dict[str, int]) -> None:
        super().__init__()
        self.levels = levels

    def filter(self, record: logging.LogRecord) -> bool:
        for name, level in self.levels.items():
            if record.name == name or record.name.startswith(name + "."):
                return record.levelno >= level
        return True


class _LineLogger:
    """A ``write`` that logs each complete line at INFO (what MLflow prints is information)."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.pending = ""

    def __call__(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if line.strip():
                self.logger.info("%s", line.rstrip())
        return len(text)
