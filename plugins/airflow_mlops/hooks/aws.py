"""S3 credentials from an Airflow AWS connection, as an ``S3Store`` the core serves URIs with.

Connection: type ``aws``; ``login``/``password`` are the access key pair (or leave them empty
for the default chain: instance roles, profiles); ``extra.endpoint_url`` points at an
S3-compatible store such as MinIO; ``extra.region_name`` the region. The secret goes to the
store's boto3 session only: never to logs, XCom, MLflow or a module global.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_mlops.core.io.s3 import S3Store


def s3_store_from_connection(aws_conn_id: str) -> S3Store:
    """The credentials and endpoint of ``aws_conn_id`` as a ``core.io.s3.S3Store``."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    from airflow_mlops.core.io.s3 import S3Store

    hook = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="s3")
    credentials = hook.get_session().get_credentials()
    session_kwargs: dict[str, Any] = {"region_name": hook.conn_region_name}
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        session_kwargs.update(
            aws_access_key_id=frozen.access_key,
            aws_secret_access_key=frozen.secret_key,
            aws_session_token=frozen.token,
        )
    endpoint = hook.conn_config.endpoint_url
    return S3Store(f"connection {aws_conn_id}", session_kwargs, {"endpoint_url": endpoint} if endpoint else {})
