"""The pipeline spec: one YAML file describes one ML use case.

The spec is validated up front (pydantic, unknown fields forbidden) so a typo in a
YAML key is an error naming the file and the field, not a silently ignored setting.
This module stays light (pydantic + yaml only) because DAG factories load specs at
parse time.

One module per section of the data phase (data, validation, cleaning, labeling, split), one per
phase for the model-engineering and operations sections, and ``pipeline`` for the whole. The
package re-exports the public names: ``from airflow_mlops.spec import PipelineSpec``.
"""

from airflow_mlops.spec.base import MAX_COLUMN_NAME_CHARS, NAME_PATTERN, SpecError, Strict, column_name_problem
from airflow_mlops.spec.cleaning import (
    CleaningSpec,
    ClipSpec,
    DeduplicateSpec,
    ImputeSpec,
    ImputeStrategy,
    NormalizeSpec,
)
from airflow_mlops.spec.data import (
    CsvOptions,
    DataSpec,
    DeclaredType,
    EnrichSpec,
    FeaturesSpec,
    LandingSpec,
    SourceSpec,
    SqlSourceSpec,
)
from airflow_mlops.spec.expressions import check_arithmetic
from airflow_mlops.spec.labeling import LabelingSpec, LabelJoinSpec
from airflow_mlops.spec.metrics import LOWER_IS_BETTER, TASK_METRICS
from airflow_mlops.spec.model import (
    CandidateSpec,
    EvaluationSpec,
    ModelSpec,
    PackagingSpec,
    PreprocessingSpec,
    PromotionSpec,
    RequirementsSpec,
    SearchSpec,
    SearchValue,
)
from airflow_mlops.spec.operations import DeploymentSpec, FeatureThresholdsSpec, MonitoringSpec, ScoringSpec
from airflow_mlops.spec.pipeline import PipelineSpec, RetriesSpec, ScheduleSpec, load_spec, parse_spec
from airflow_mlops.spec.prediction_log import RESERVED_COLUMNS
from airflow_mlops.spec.rollout import CanarySpec, ReplaySpec, RolloutSpec, ShadowSpec
from airflow_mlops.spec.split import SplitName, SplitSpec
from airflow_mlops.spec.sql_query import check_select_query
from airflow_mlops.spec.validation import ExpectationSpec, InferenceSpec, LandedBatchSpec, ValidationSpec

__all__ = [
    "LOWER_IS_BETTER",
    "MAX_COLUMN_NAME_CHARS",
    "NAME_PATTERN",
    "RESERVED_COLUMNS",
    "TASK_METRICS",
    "CanarySpec",
    "CandidateSpec",
    "CleaningSpec",
    "ClipSpec",
    "CsvOptions",
    "DataSpec",
    "DeclaredType",
    "DeduplicateSpec",
    "DeploymentSpec",
    "EnrichSpec",
    "EvaluationSpec",
    "ExpectationSpec",
    "FeatureThresholdsSpec",
    "FeaturesSpec",
    "ImputeSpec",
    "ImputeStrategy",
    "InferenceSpec",
    "LabelJoinSpec",
    "LabelingSpec",
    "LandedBatchSpec",
    "LandingSpec",
    "ModelSpec",
    "MonitoringSpec",
    "NormalizeSpec",
    "PackagingSpec",
    "PipelineSpec",
    "PreprocessingSpec",
    "PromotionSpec",
    "ReplaySpec",
    "RequirementsSpec",
    "RetriesSpec",
    "RolloutSpec",
    "ScheduleSpec",
    "ScoringSpec",
    "SearchSpec",
    "SearchValue",
    "ShadowSpec",
    "SourceSpec",
    "SpecError",
    "SplitName",
    "SplitSpec",
    "SqlSourceSpec",
    "Strict",
    "ValidationSpec",
    "check_arithmetic",
    "check_select_query",
    "column_name_problem",
    "load_spec",
    "parse_spec",
]
