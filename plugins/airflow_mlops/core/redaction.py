"""One redaction for every message the project returns or logs: no credential leaves in text.

``redact(text)`` replaces, wherever they appear in free text (an exception message, a URL,
a log line):

- the userinfo of a URL (``scheme://user:password@host`` -> ``scheme://***@host``);
- the value of a credential-like query parameter or ``key=value`` / ``"key": "value"`` pair
  (password, passwd, pwd, secret, token, access_token, api_key, apikey, secret_key, access_key,
  private_key, signature, credential, X-Amz-Signature, X-Amz-Credential, X-Amz-Security-Token);
- ``Bearer <token>`` and ``Basic <credentials>`` in an Authorization value;
- AWS access key ids (``AKIA...``/``ASIA...``).

``redact_secrets(text, values)`` also removes known secret values (the serving token, a
connection's password) wherever they occur. ``RedactingFilter`` applies ``redact`` to every
record of a logger (its message, its arguments, its exception text), for loggers of third-party
libraries that log URLs (httpx logs each request's full URL); ``install_record_factory`` applies
it to every record the process makes, whichever logger or handler (libraries such as mlflow add
their own handlers after start-up). No imports beyond the standard library: the triggerer and
the parse path may use it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

MASK = "***"

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s@\"'<>]+)@")
_KEYS = (
    r"password|passwd|pwd|secret|client_secret|token|access_token|refresh_token|id_token|api[_-]?key|"
    r"secret_key|access_key|private_key|signature|credential|x-amz-signature|x-amz-credential|x-amz-security-token|"
    r"aws_secret_access_key|aws_session_token|authorization"
)
# key=value (query strings, "k=v" in messages) and "key": "value" (JSON) forms.
_PAIR = re.compile(rf"(?i)(?P<key>\b(?:{_KEYS})\b)(?P<sep>\s*=\s*|\"?\s*:\s*\"?)(?P<value>[^\s&\"',;}}]+)")
_AUTH = re.compile(r"(?i)\b(?P<kind>bearer|basic)\s+(?P<value>[A-Za-z0-9._~+/=-]{6,})")
_AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")


def redact(text: str) -> str:
    """``text`` with URL userinfo, credential pairs, Authorization values and AWS key ids masked."""
    if not text:
        return text
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    text = _AUTH.sub(lambda m: f"{m.group('kind')} {MASK}", text)
    text = _PAIR.sub(lambda m: f"{m.group('key')}{m.group('sep')}{MASK}", text)
    return _AWS_KEY_ID.sub(MASK, text)


def redact_secrets(text: str, values: Iterable[str | None]) -> str:
    """``redact(text)`` with every one of ``values`` (4 characters or more) masked too."""
    for value in sorted({v for v in values if v and len(v) >= 4}, key=len, reverse=True):
        text = text.replace(value, MASK)
    return redact(text)


def describe_error(exc: BaseException, limit: int = 300, secrets: Iterable[str | None] = ()) -> str:
    """``Type: message`` of an exception, redacted (``secrets`` too) and cut to ``limit`` characters."""
    message = redact_secrets(str(exc), secrets).replace("\n", " ").strip()
    if len(message) > limit:
        message = message[: limit - 3] + "..."
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's message, arguments and exception text.

    ``secrets`` are known values masked wherever they occur (see ``redact_secrets``). A record
    whose message needs no redaction keeps its message and arguments as they are.
    """

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        super().__init__()
        self.secrets = tuple(v for v in secrets if v)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: leave it to the handler
            return True
        redacted = redact_secrets(message, self.secrets)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[1] is not None:
            import traceback

            record.exc_text = redact_secrets("".join(traceback.format_exception(*record.exc_info)), self.secrets)
            record.exc_info = None
        return True


def install(
    logger_names: Iterable[str] = ("", "httpx", "httpcore", "urllib3", "mlflow", "botocore"),
    secrets: Iterable[str | None] = (),
) -> None:
    """Add a ``RedactingFilter`` to these loggers' handlers and to the loggers themselves."""
    secrets = tuple(secrets)
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter(secrets))
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter(secrets))


def install_record_factory(secrets: Iterable[str | None] = ()) -> None:
    """Redact every log record this process makes, at its making (any logger, any handler, added later
    or not). Installing again replaces the secrets; records cost nothing more unless they are made."""
    redactor = RedactingFilter(secrets)
    base = logging.getLogRecordFactory()
    base = getattr(base, "redaction_base", base)

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        redactor.filter(record)
        return record

    factory.redaction_base = base  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
