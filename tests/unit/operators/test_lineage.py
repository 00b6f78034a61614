"""operators.lineage: every operator declares its lineage, and the provider's extraction path reads it.

The events of real tasks through the provider's listener and file transport are
``tests/component/operators/test_lineage_events.py``; here the methods are called as the
listener calls them (``ExtractorManager.extract_metadata``) on operators built in the test.
"""

from __future__ import annotations

import inspect
import json
from types import SimpleNamespace

import pytest

from airflow_mlops.core.lineage import KINDS
from airflow_mlops.operators import approval, data, model, operations, release
from airflow_mlops.operators.base import MlopsBaseOperator
from airflow_mlops.operators.lineage import Lineage, LineageMixin

pytestmark = pytest.mark.unit

SPLIT = {part: {"uri": f"/data/split/{part}.parquet", "rows": rows, "fingerprint": f"fp-{part}"}
         for part, rows in (("train", 700), ("test", 300))}  # fmt: skip
DATASET = {"uri": "/data/ingest/dataset.parquet", "rows": 1000, "fingerprint": "f" * 16, "profile_uri": "",
           "sources": ["/lake/a.parquet"], "rows_by_source": {"/lake/a.parquet": 1000}}  # fmt: skip
OPERATORS = sorted(
    {
        cls
        for module in (data, model, release, operations, approval)
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, LineageMixin) and cls.__module__ == module.__name__ and not cls.__name__.startswith("_")
    },
    key=lambda cls: cls.__name__,
)


@pytest.fixture(autouse=True)
def mlflow_connection(monkeypatch):
    connection = {"conn_type": "mlflow", "host": "https://bob:pw@mlflow.internal"}
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps(connection))


def test_every_operator_of_the_package_reports_lineage():
    assert len(OPERATORS) >= 15
    # Declared on the class itself (a task that names no dataset says so with an empty Lineage()).
    undeclared = [cls.__name__ for cls in OPERATORS if "lineage_io" not in vars(cls)]
    assert not undeclared, f"declare lineage_io = Lineage(...) on {undeclared} (operators.lineage)"


@pytest.mark.parametrize("operator", OPERATORS, ids=lambda cls: cls.__name__)
def test_a_declaration_names_known_kinds_and_parameters_resolved_before_the_task_runs(operator):
    declared = operator.lineage_io
    assert declared.output is None or declared.output in KINDS
    for parameter, kind in declared.inputs.items():
        assert kind in KINDS, f"{operator.__name__}: unknown kind {kind!r}"
        # A template field: its XComArg is resolved before the listener's start event reads it.
        assert parameter in operator.template_fields, f"{operator.__name__}.{parameter} is not a template field"


def _split_operator(**kwargs):
    return data.SplitDataOperator(task_id="split", spec_path="/nowhere.yaml", dataset=DATASET, **kwargs)


def _extract(task, state):
    from airflow.providers.openlineage.extractors.manager import ExtractorManager

    dagrun = SimpleNamespace(run_id="manual__1")
    return ExtractorManager().extract_metadata(dagrun=dagrun, task=task, task_instance_state=state,
                                               task_instance=SimpleNamespace(task=task))  # fmt: skip


def test_the_provider_extracts_inputs_at_start_and_outputs_with_rows_and_fingerprints_at_completion():
    from airflow.utils.state import TaskInstanceState

    task = _split_operator()
    start = _extract(task, TaskInstanceState.RUNNING)
    assert [(d.namespace, d.name) for d in start.inputs] == [("file", "/data/ingest/dataset.parquet")]
    assert start.inputs[0].inputFacets["dataQualityMetrics"].rowCount == 1000 and start.outputs == []
    task.lineage_result = SPLIT
    done = _extract(task, TaskInstanceState.SUCCESS)
    assert [d.name for d in done.outputs] == ["/data/split/train.parquet", "/data/split/test.parquet"]
    train = done.outputs[0]
    assert train.outputFacets["outputStatistics"].rowCount == 700
    assert train.facets["mlops_fingerprint"].fingerprint == "fp-train"
    assert train.facets["version"].datasetVersion == "fp-train"


def test_a_failed_task_reports_the_inputs_it_knew_and_no_output():
    from airflow.utils.state import TaskInstanceState

    task = _split_operator()
    task.lineage_result = SPLIT  # a result of an earlier attempt is not this attempt's output
    failed = _extract(task, TaskInstanceState.FAILED)
    assert [d.name for d in failed.inputs] == ["/data/ingest/dataset.parquet"] and failed.outputs == []


def test_the_execute_wrapper_keeps_the_result_and_forgets_an_earlier_one(monkeypatch):
    class Returns(MlopsBaseOperator):
        lineage_io = Lineage(output="split")

        def execute(self, context):
            if context.get("fail"):
                raise RuntimeError("boom")
            return SPLIT

    monkeypatch.setattr(Returns, "s3_stores", lambda self: None)
    task = Returns(task_id="t", spec_path="/nowhere.yaml")
    assert task.execute({"task": task}) == SPLIT and task.lineage_result == SPLIT
    with pytest.raises(RuntimeError):
        task.execute({"task": task, "fail": True})
    assert task.lineage_result is None


def test_the_model_version_is_named_by_the_tracking_uri_without_credentials():
    task = release.RegisterModelOperator(task_id="register", spec_path="/s.yaml", training={"run_id": "r1"},
                                         evaluation={}, dataset=DATASET, split=SPLIT)  # fmt: skip
    task.lineage_result = {"name": "churn_classifier", "version": "3"}
    lineage = task.get_openlineage_facets_on_complete(None)
    (version,) = lineage.outputs
    assert (version.namespace, version.name) == ("https://mlflow.internal", "models/churn_classifier/3")
    facet = version.facets["mlops_model_version"]
    assert (facet.name, facet.version, facet.run_id) == ("churn_classifier", "3", "r1")
    assert "runs/r1" in {d.name for d in lineage.inputs}


def test_asset_outlets_join_the_outputs_of_a_task_that_ran_but_not_of_a_skipped_one():
    from airflow.sdk import Asset

    gate = {"name": "churn_classifier", "version": "3", "promote": True}
    champion = Asset(name="mlops.churn.champion", uri="file:///events/champion")
    task = release.PromoteModelOperator(task_id="promote", spec_path="/s.yaml", gate=gate, outlets=[champion])
    assert [d.name for d in task.get_openlineage_facets_on_complete(None).outputs] == []  # skipped: no result
    task.lineage_result = {"id": "p", "from_version": "2", "to_version": "3", "at": "", "by": "", "reason": ""}
    outputs = task.get_openlineage_facets_on_complete(None).outputs
    assert [(d.namespace, d.name) for d in outputs] == [
        ("https://mlflow.internal", "models/churn_classifier@champion"),
        ("file", "/events/champion"),
    ]


def test_the_approval_reports_the_version_it_asks_about():
    gate = {"name": "churn_classifier", "version": "3", "promote": True}
    task = approval.PromotionApprovalOperator(task_id="approve", gate=gate)
    (version,) = task.get_openlineage_facets_on_start().inputs
    assert version.name == "models/churn_classifier/3"


def test_the_custom_facets_match_their_published_schema():
    import attr

    from airflow_mlops.operators.lineage import FACET_SCHEMA, _custom_facets
    from tests.conftest import REPO

    schema = json.loads((REPO / "docs" / "lineage-facets.json").read_text())
    assert schema["$id"] + "#/$defs/" == FACET_SCHEMA
    for facet in _custom_facets().values():
        properties = schema["$defs"][facet.__name__]["allOf"][1]["properties"]
        fields = {f.name for f in attr.fields(facet) if not f.name.startswith("_")}
        assert fields == set(properties), facet.__name__
        assert facet(**dict.fromkeys(fields, "x"))._schemaURL == FACET_SCHEMA + facet.__name__
