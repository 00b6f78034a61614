"""The serving app's OpenAPI 3.1 document, built from the spec's inputs.

What it states, the app enforces (a unit test holds each limit against the app): one to
``max_rows`` rows in every body shape, the ``X-Request-ID`` form, bearer auth where listed.
"""

from __future__ import annotations

from typing import Any

from airflow_mlops.serving.body_shapes import SHAPES
from airflow_mlops.serving.payload import InputSchema


def _row_schema(schema: InputSchema) -> dict[str, Any]:
    properties: dict[str, Any] = {c: {"type": ["number", "null"]} for c in schema.numeric}
    properties.update({c: {"type": ["string", "null"]} for c in schema.categorical})
    if schema.id_column is not None:
        properties[schema.id_column] = {
            "type": ["string", "integer", "null"],
            "description": "Optional entity id, logged with the prediction (joins delayed labels).",
        }
    return {"type": "object", "required": list(schema.required), "properties": properties}


def _json(schema_: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema_}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _message_schema() -> dict[str, Any]:
    return {"type": "object", "properties": {"detail": {"type": "string"}}}


def _request_schema(schema: InputSchema, row: dict[str, Any]) -> dict[str, Any]:
    """Every body shape (``serving.body_shapes.SHAPES``), each of one to ``max_rows`` rows."""
    return {
        "oneOf": [
            {"type": "object", "required": [shape.key], "properties": {shape.key: shape.openapi(schema, row)}}
            for shape in SHAPES.values()
        ]
    }


def _prediction_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["request_id", "model_name", "model_version", "predictions"],
        "properties": {
            "request_id": {
                "type": "string",
                "description": "The server's id of this request: the prediction log's request_id, which delayed "
                "labels join by (with the row index).",
            },
            "client_request_id": {"type": "string", "description": "The X-Request-ID header, when it was valid."},
            "client_request_id_error": {"type": "string", "description": "Why the X-Request-ID header was ignored."},
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "predictions": {"type": "array", "items": {}},
            "scores": {
                "type": "array",
                "items": {"type": "number"},
                "description": "Classifiers: with two classes the probability of the second class (labels in "
                "scikit-learn's sorted order), with more the probability of the predicted class.",
            },
            "probabilities": {
                "type": "array",
                "items": {"type": "object", "additionalProperties": {"type": "number"}},
                "description": "Classifiers of more than two classes: every class's probability per row, keyed by "
                "the class label (GET /v1/model lists the classes).",
            },
        },
    }


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "detail": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                        "msg": {"type": "string"},
                        "type": {"type": "string"},
                    },
                },
            }
        },
    }


def _not_ready_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "status": {"const": "not ready"},
            "reason": {"enum": ["starting", "registry unreachable", "no champion", "model failed to load"]},
        },
    }


def _predict_operation(message: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/predict (and /invocations)."""
    return {
        "summary": "Predict with the champion",
        "security": [{"bearerAuth": []}],
        "parameters": [
            {
                "name": "X-Request-ID",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9._:-]+$"},
                "description": "The client's id of the request: answered and logged as client_request_id. One "
                "outside this form is ignored and the answer says so (client_request_id_error).",
            }
        ],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("PredictRequest")}}},
        "responses": {
            "200": _json(_ref("PredictResponse"), "Predictions, model version, request id"),
            "401": _json(message, "Missing or wrong bearer token"),
            "413": _json(message, "Body too large"),
            "422": _json(_ref("ValidationError"), "The body does not fit the model inputs"),
            "503": _json(message, "No model loaded yet"),
        },
    }  # fmt: skip


def openapi_document(schema: InputSchema, title: str, version: str) -> dict[str, Any]:
    """The document for ``schema``: paths, then the request, answer and error schemas.

    Longer than most functions on purpose: the paths are one literal, so the document reads in
    the order it is served; the schemas it refers to are built by the functions above.
    """
    row = _row_schema(schema)
    message = _message_schema()
    predict = _predict_operation(message)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": {
            "/v1/predict": {"post": {**predict, "operationId": "predict"}},
            "/invocations": {"post": {**predict, "operationId": "invocations", "summary": "Same as /v1/predict"}},
            "/v1/model": {
                "get": {
                    "summary": "The model being served",
                    "operationId": "model",
                    "security": [{"bearerAuth": []}],
                    "responses": {
                        "200": _json({"type": "object"}, "Name, version, inputs"),
                        "401": _json(message, "Missing or wrong bearer token"),
                        "503": _json(message, "No model yet (the reason, last_load_error, last_poll_error)"),
                    },
                }
            },
            "/health/live": {
                "get": {"summary": "Liveness", "operationId": "live", "responses": {"200": _json(message, "Alive")}},
                "head": {
                    "summary": "Liveness, no body",
                    "operationId": "live_head",
                    "responses": {"200": {"description": "Alive"}},
                },
            },
            "/health/ready": {
                "get": {
                    "summary": "Readiness: a model is loaded",
                    "operationId": "ready",
                    "responses": {
                        "200": _json({"type": "object"}, "Ready"),
                        "503": _json(_not_ready_schema(), "No model yet"),
                    },
                },
                "head": {
                    "summary": "Readiness, no body",
                    "operationId": "ready_head",
                    "responses": {"200": {"description": "Ready"}, "503": {"description": "No model yet"}},
                },
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "operationId": "metrics",
                    "security": [{"bearerAuth": []}],
                    "responses": {
                        "200": {"description": "Text exposition format"},
                        "401": _json(message, "Missing or wrong bearer token"),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "PredictRequest": _request_schema(schema, row),
                "PredictResponse": _prediction_schema(),
                "ValidationError": _error_schema(),
                "Row": row,
            },
        },
    }
