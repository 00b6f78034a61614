"""An operator's execute keeps library noise out of the task log, and only that noise.

Real libraries, real noise: skops' first import in a task while Airflow's deprecated modules are
loaded (its ``whichmodule`` scan), Great Expectations' INFO chatter, MLflow's own stderr handler and
prints.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import pytest

from airflow_mlops.operators.base import MlopsBaseOperator

pytestmark = pytest.mark.unit


class _Noisy(MlopsBaseOperator):
    def __init__(self, *, work: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.work = work

    def execute(self, context: Any) -> Any:
        return self.work(self)


def _run(work: Any) -> Any:
    return _Noisy(task_id="noisy", spec_path="/unused.yaml", work=work).execute({})


# skops computes its trusted ufunc names when skops.io is first imported, in the task (a task-time
# import): whichmodule looks each scipy.special ufunc up in every loaded module, and Airflow's
# deprecated modules warn for every name. Once per process, so it runs in a fresh interpreter.
SKOPS_PROBE = """
import json, sys, warnings
import airflow.utils.timezone  # a deprecated module, loaded in every task process
from tests.unit.operators.test_task_logs import _Noisy
shown = []
warnings.simplefilter("always")
warnings.showwarning = lambda message, category, filename, *a, **k: shown.append((str(message), filename))

def work(_):
    import skops.io  # noqa: F401
    warnings.warn("a real warning of ours", UserWarning, stacklevel=1)
    warnings.warn("a library's future change", FutureWarning, stacklevel=1)

_Noisy(task_id="noisy", spec_path="/unused.yaml", work=work).execute({})
inside = list(shown)
shown.clear()
for name in [m for m in sys.modules if m.startswith("skops")]:
    del sys.modules[name]
import skops.io  # the same import outside execute
print(json.dumps({"inside": inside, "outside": len([s for s in shown if "skops" in s[1]])}))
"""


def test_skops_module_scan_warnings_are_dropped_inside_execute_and_ours_are_kept():
    import json
    import subprocess
    import sys

    from tests.conftest import REPO

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO)])}
    done = subprocess.run([sys.executable, "-c", SKOPS_PROBE], capture_output=True, text=True, env=env, timeout=300,
                          cwd=REPO)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["outside"] > 100  # the noise is real: one warning per scipy ufunc name and deprecated module
    assert sorted(message for message, _ in found["inside"]) == ["a library's future change", "a real warning of ours"]


def test_great_expectations_info_chatter_is_dropped_and_its_warnings_kept(caplog):
    gx = logging.getLogger("great_expectations._docs_decorators")
    caplog.set_level(logging.INFO)

    def work(_: Any) -> None:
        gx.info("Skipping registering function get_context because it does not have a class")
        gx.warning("a GX warning worth reading")
        own = logging.getLogger("great_expectations.data_context.types.base")
        own.setLevel(logging.INFO)  # as that module does when GX is imported (inside the task)
        own.info("Created temporary directory '/tmp/x' for ephemeral docs site")

    _run(work)
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("great_expectations")]
    assert messages == ["a GX warning worth reading"]
    assert logging.getLogger("great_expectations").level == logging.NOTSET  # restored after execute


def test_mlflow_output_goes_through_logging_at_its_level_not_to_stderr(caplog, capsys, monkeypatch):
    import mlflow  # noqa: F401  # configures its loggers: a handler of its own on stderr
    from mlflow.utils import logging_utils

    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_TEST", '{"conn_type": "mlflow", "host": "sqlite:////tmp/unused.db"}')
    mlflow_logger = logging.getLogger("mlflow")
    if not any(getattr(h, "stream", None) is logging_utils.MLFLOW_LOGGING_STREAM for h in mlflow_logger.handlers):
        logging_utils._configure_mlflow_loggers("mlflow")  # as `import mlflow` does in a fresh task process
    handlers = list(mlflow_logger.handlers)
    caplog.set_level(logging.INFO)

    def work(operator: MlopsBaseOperator) -> None:
        operator.mlflow_conn_id = "mlflow_test"
        operator.registry()  # a task about to use MLflow
        logging.getLogger("mlflow.store.db.utils").info("Creating initial MLflow database tables...")
        logging_utils.eprint("Created version '1' of model 'churn_classifier'.")

    capsys.readouterr()
    _run(work)
    assert "MLflow database tables" not in capsys.readouterr().err
    records = {r.getMessage(): r.levelname for r in caplog.records if r.name.startswith("mlflow")}
    assert records == {
        "Creating initial MLflow database tables...": "INFO",
        "Created version '1' of model 'churn_classifier'.": "INFO",
    }
    assert mlflow_logger.handlers == handlers and not mlflow_logger.propagate  # MLflow's own setup is back
    assert "write" not in vars(logging_utils.MLFLOW_LOGGING_STREAM)


def test_the_filters_levels_and_environment_are_restored_after_execute():
    filters, level = list(warnings.filters), logging.getLogger("alembic").level
    variable = os.environ.get("MLFLOW_CONFIGURE_LOGGING")

    def work(_: Any) -> None:
        assert os.environ["MLFLOW_CONFIGURE_LOGGING"] == (variable or "false")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        _run(work)
    assert warnings.filters == filters and logging.getLogger("alembic").level == level
    assert os.environ.get("MLFLOW_CONFIGURE_LOGGING") == variable
