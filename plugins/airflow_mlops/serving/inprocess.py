"""Calling an ASGI app in the same process, without a socket (the deploy smoke test, tests)."""

from __future__ import annotations

from typing import Any


async def call(
    app: Any, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request through ``app``; returns status, headers and body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 0),
        "server": ("in-process", 0),
    }
    sent_body = False

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if sent_body:
            return {"type": "http.disconnect"}
        sent_body = True
        return {"type": "http.request", "body": body, "more_body": False}

    response: dict[str, Any] = {"status": 0, "headers": {}, "body": b""}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            response["status"] = message["status"]
            headers: dict[str, str] = {}
            for key, value in message.get("headers", []):  # a repeated header shows as "a, b", as HTTP folds it
                name, text = key.decode("latin-1"), value.decode("latin-1")
                headers[name] = f"{headers[name]}, {text}" if name in headers else text
            response["headers"] = headers
        elif message["type"] == "http.response.body":
            response["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return response["status"], response["headers"], response["body"]
