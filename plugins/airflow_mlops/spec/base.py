"""What every spec section shares: the strict base model, the error type, the column-name rule."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,62}$")


MAX_COLUMN_NAME_CHARS = 250


def column_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a column of a pipeline, or None.

    Any text works end to end (spaces, ``/``, dots, dashes, unicode, leading digits; the
    ONNX graph maps such names to input names of its own) except what no reader, log or
    registry can keep apart: an empty name, surrounding whitespace (CSV headers and YAML
    disagree on it), control characters, or a name longer than 250 characters.
    """
    if not name:
        return "is empty"
    if name != name.strip():
        return "starts or ends with whitespace (rename the column, or strip the header)"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "holds a control character (newline, tab, ...)"
    if len(name) > MAX_COLUMN_NAME_CHARS:
        return f"is longer than {MAX_COLUMN_NAME_CHARS} characters"
    return None


class SpecError(ValueError):
    """A spec file that cannot be used, with the file and the offending field named."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
