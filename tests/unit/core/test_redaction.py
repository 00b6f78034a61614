"""One redaction for answers and logs: credentials never leave in text."""

from __future__ import annotations

import logging

import pytest

from airflow_mlops.core.redaction import MASK, RedactingFilter, describe_error, redact, redact_secrets

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("cannot reach http://alice:s3cr3t-pw@mlflow:5000/api/2.0", "s3cr3t-pw"),
        ("postgresql+psycopg2://airflow:pg-pass-1@postgres:5432/airflow", "pg-pass-1"),
        ("GET https://host/x?token=tok-123456&b=2", "tok-123456"),
        ("https://b.s3.amazonaws.com/k?X-Amz-Signature=abcdef123&X-Amz-Credential=AKIAABCDEFGHIJKLMNOP", "abcdef123"),
        ('{"password": "hunter22", "user": "u"}', "hunter22"),
        ("Authorization: Bearer eyJhbGciOi.payload.sig", "eyJhbGciOi.payload.sig"),
        ("key id AKIAIOSFODNN7EXAMPLE in use", "AKIAIOSFODNN7EXAMPLE"),
        ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI/K7MDENG"),
    ],
)
def test_credentials_are_masked_wherever_they_appear(text, secret):
    out = redact(text)
    assert secret not in out and MASK in out


def test_what_is_not_a_credential_stays_readable():
    text = "model churn v3 at http://mlflow:5000/#/models, 12 rows, column 'monthly_charges' holds text"
    assert redact(text) == text
    assert redact("http://mlflow:5000 and s3://bucket/path") == "http://mlflow:5000 and s3://bucket/path"
    assert redact('NoSuchKey: {"Key": "churn/lake/a.parquet"}') == 'NoSuchKey: {"Key": "churn/lake/a.parquet"}'


def test_known_secret_values_and_errors_are_masked_and_cut():
    assert redact_secrets("token abcdEFGH used; short x", ["abcdEFGH", "x"]) == f"token {MASK} used; short x"
    message = describe_error(ConnectionError("http://u:pw123456@h/ " + "y" * 500), limit=80)
    assert message.startswith("ConnectionError: http://***@h/") and len(message) <= 80 + len("ConnectionError: ")


def test_the_logging_filter_redacts_messages_arguments_and_tracebacks(caplog):
    logger = logging.getLogger("test.redaction")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="test.redaction"):
        logger.info("HTTP Request: GET %s", "http://bob:pa55word@mlflow/api?token=t0k3n99")
        try:
            raise RuntimeError("load failed for http://bob:pa55word@mlflow/x")
        except RuntimeError:
            logger.exception("could not load")
    text = caplog.text + "".join(r.exc_text or "" for r in caplog.records)
    assert "pa55word" not in text and "t0k3n99" not in text
    assert "http://***@mlflow" in text
