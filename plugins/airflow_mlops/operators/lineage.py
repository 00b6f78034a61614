"""OpenLineage for every pipeline operator: its inputs and outputs, from its parameters and result.

apache-airflow-providers-openlineage's listener calls ``get_openlineage_facets_on_start()``,
``get_openlineage_facets_on_complete(task_instance)`` and
``get_openlineage_facets_on_failure(task_instance)`` of a task, in the task's process, when
a transport is configured (without one the provider is disabled and nothing here runs). An
operator joins by declaring, once, on its class::

    lineage_io = Lineage(inputs={"dataset": "dataset", "split": "split.test"}, output="training")

``inputs`` maps the parameters that hold upstream results (XComArgs, resolved before the task
runs) to their contract kind; ``output`` is the kind of the task's own result. What a kind
names is one row of ``core.lineage.KINDS``. The task's Asset outlets are added as outputs (the
provider adds them only when an operator names no dataset itself).

Light at parse time: this module imports the standard library only; OpenLineage, the facets
and ``core`` are imported inside the methods, which run at task time.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_mlops.core.lineage import Facts, Ref

# The custom facets' schemaURL: their JSON Schema is docs/lineage-facets.json (no public URL to point at).
FACET_SCHEMA = "urn:airflow-mlops:lineage-facets:1#/$defs/"


@dataclass(frozen=True)
class Lineage:
    """What an operator reads and writes, by contract kind (``core.lineage.KINDS``).

    :param inputs: parameter name -> kind, for the parameters that hold upstream task results.
    :param output: the kind of the task's own result (None: it names no dataset).
    """

    inputs: Mapping[str, str] = field(default_factory=dict)
    output: str | None = None


class LineageMixin:
    """The three OpenLineage methods, shared by every operator of the package.

    The task's result is kept on the operator by ``operators.base`` (``lineage_result``) so the
    completion event needs no XCom read; an operator that is not an ``MlopsBaseOperator`` (the
    approval) declares inputs only.
    """

    lineage_io: ClassVar[Lineage] = Lineage()
    lineage_result: Any = None

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        """The inputs the task's parameters name (upstream results are resolved by now)."""
        return self._operator_lineage(None, complete=False)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """Inputs and outputs, with the row counts, fingerprints and MLflow ids the result holds."""
        return self._operator_lineage(self.lineage_result, complete=True)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage:
        """The inputs known: a failed task wrote nothing anyone should read."""
        return self._operator_lineage(None, complete=False)

    def lineage_facts(self) -> Facts:
        """The MLflow namespace, the resolved upstream results and the model name (from the spec, lazily)."""
        from airflow_mlops.core.lineage import Facts

        upstream = {name: getattr(self, name, None) for name in self.lineage_io.inputs}

        def model_name() -> str | None:
            load_spec = getattr(self, "load_spec", None)
            try:
                return str(load_spec().registered_model_name) if load_spec else None
            except Exception:  # lineage never fails a task; the dataset is left out
                return None

        return Facts(tracking_uri=self.lineage_tracking_uri, upstream=upstream, model_name=model_name)

    def lineage_tracking_uri(self) -> str:
        """The connection's tracking URI without credentials: the hook's when the task made it, else read."""
        hook = self.__dict__.get("mlflow_hook")
        uri = hook.__dict__.get("tracking_uri") if hook is not None else None
        if uri is None:
            try:
                from airflow_mlops.hooks.mlflow import MlflowHook

                uri = MlflowHook(mlflow_conn_id=getattr(self, "mlflow_conn_id", "mlflow_default")).target.tracking_uri
            except Exception:  # no connection: the models are still named, under a generic namespace
                uri = "mlflow"
        return str(uri)

    def _operator_lineage(self, result: Any, *, complete: bool) -> OperatorLineage:
        from airflow.providers.openlineage.extractors import OperatorLineage

        from airflow_mlops.core.lineage import task_datasets, uri_ref

        declared = self.lineage_io
        inputs, outputs = task_datasets(declared.inputs, declared.output, result, self.lineage_facts())
        if complete and result is not None:  # a skipped task emitted no Asset event
            known = {ref.key for ref in outputs}
            for outlet in getattr(self, "outlets", None) or []:
                uri = getattr(outlet, "uri", None)
                if uri and (ref := uri_ref(str(uri))).key not in known:
                    outputs.append(ref)
        return OperatorLineage(inputs=[to_input(ref) for ref in inputs], outputs=[to_output(ref) for ref in outputs])


def to_input(ref: Ref) -> Any:
    """An OpenLineage ``InputDataset``: the row count as a ``DataQualityMetrics`` input facet."""
    from openlineage.client.event_v2 import InputDataset
    from openlineage.client.facet_v2 import data_quality_metrics_input_dataset as quality

    facets: dict[str, Any] = {}
    if ref.rows is not None:
        facets["dataQualityMetrics"] = quality.DataQualityMetricsInputDatasetFacet(columnMetrics={}, rowCount=ref.rows)
    return InputDataset(namespace=ref.namespace, name=ref.name, facets=dataset_facets(ref), inputFacets=facets)


def to_output(ref: Ref) -> Any:
    """An OpenLineage ``OutputDataset``: the row count as an ``OutputStatistics`` output facet."""
    from openlineage.client.event_v2 import OutputDataset
    from openlineage.client.facet_v2 import output_statistics_output_dataset as statistics

    facets: dict[str, Any] = {}
    if ref.rows is not None:
        facets["outputStatistics"] = statistics.OutputStatisticsOutputDatasetFacet(rowCount=ref.rows)
    return OutputDataset(namespace=ref.namespace, name=ref.name, facets=dataset_facets(ref), outputFacets=facets)


def dataset_facets(ref: Ref) -> dict[str, Any]:
    """The dataset facets: ``version`` and ``mlops_fingerprint`` (our content fingerprint),
    ``mlops_model_version`` (name, version, MLflow run id), ``mlops_mlflow_run``."""
    from openlineage.client.facet_v2 import dataset_version_dataset

    custom = _custom_facets()
    facets: dict[str, Any] = {}
    if ref.fingerprint:
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=ref.fingerprint)
        facets["mlops_fingerprint"] = custom["fingerprint"](fingerprint=ref.fingerprint)
    if ref.model:
        model = {k: ref.model.get(k) for k in ("name", "version", "run_id", "alias")}
        facets["mlops_model_version"] = custom["model"](**model)
    if ref.run:
        run = {k: ref.run.get(k) for k in ("run_id", "experiment_id", "model_uri")}
        facets["mlops_mlflow_run"] = custom["run"](**run)
    return facets


@functools.cache
def _custom_facets() -> dict[str, type]:
    """The package's own dataset facets, defined at first use (attrs + OpenLineage at task time only)."""
    import attr
    from openlineage.client.facet_v2 import DatasetFacet

    @attr.define
    class MlopsFingerprintDatasetFacet(DatasetFacet):  # type: ignore[misc]
        """The dataset's content fingerprint (``core.io.tables.fingerprint_frame``): the MLflow dataset digest."""

        fingerprint: str
        _additional_skip_redact: ClassVar[list[str]] = ["fingerprint"]

        @staticmethod
        def _get_schema() -> str:
            return FACET_SCHEMA + "MlopsFingerprintDatasetFacet"

    @attr.define
    class MlopsModelVersionDatasetFacet(DatasetFacet):  # type: ignore[misc]
        """A registered model version (or the alias pointing at one) and the MLflow run it came from."""

        name: str | None = None
        version: str | None = None
        run_id: str | None = None
        alias: str | None = None
        _additional_skip_redact: ClassVar[list[str]] = ["name", "version", "run_id", "alias"]

        @staticmethod
        def _get_schema() -> str:
            return FACET_SCHEMA + "MlopsModelVersionDatasetFacet"

    @attr.define
    class MlopsMlflowRunDatasetFacet(DatasetFacet):  # type: ignore[misc]
        """An MLflow run and, for a training run, the model it logged."""

        run_id: str | None = None
        experiment_id: str | None = None
        model_uri: str | None = None
        _additional_skip_redact: ClassVar[list[str]] = ["run_id", "experiment_id", "model_uri"]

        @staticmethod
        def _get_schema() -> str:
            return FACET_SCHEMA + "MlopsMlflowRunDatasetFacet"

    return {
        "fingerprint": MlopsFingerprintDatasetFacet,
        "model": MlopsModelVersionDatasetFacet,
        "run": MlopsMlflowRunDatasetFacet,
    }
