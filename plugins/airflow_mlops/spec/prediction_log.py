"""The prediction log's columns: named once here (the spec reserves them; core writes and reads them)."""

from __future__ import annotations

# Columns of the prediction log; a feature or id with one of these names would be overwritten.
RESERVED_COLUMNS = {
    "request_id", "client_request_id", "row", "logged_at", "model_name", "model_version", "source_uri",
    "prediction", "score", "probabilities",
}  # fmt: skip
