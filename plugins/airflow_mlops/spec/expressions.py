"""The derived-feature language: arithmetic over feature names, checked with ``ast`` (never evaluated)."""

from __future__ import annotations

import ast
import re

_ARITHMETIC = {ast.Add, ast.Sub, ast.Mult, ast.Div}


_QUOTED_NAME = re.compile(r"`([^`]+)`")


def check_arithmetic(expression: str, names: set[str]) -> ast.Expression:
    """Parse a derived-feature expression, allowing only numbers, ``names``, + - * / and parentheses.

    A column whose name is no identifier is written in backticks: `` `mean radius` / 2 ``.

    Raises ValueError naming what is not allowed. The parsed tree is evaluated by
    ``training.feature_frame`` on columns directly, never through ``eval``.
    """
    quoted: dict[str, str] = {}

    def placeholder(match: re.Match[str]) -> str:
        quoted[f"__quoted_{len(quoted)}__"] = match.group(1)
        return f"__quoted_{len(quoted) - 1}__"

    try:
        tree = ast.parse(_QUOTED_NAME.sub(placeholder, expression), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"{expression!r} is not an arithmetic expression: {exc.msg}") from None
    for node in ast.walk(tree):  # `mean radius` stood for a column: the tree names the column itself
        if isinstance(node, ast.Name) and node.id in quoted:
            node.id = quoted[node.id]
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expression | ast.Load):
            continue
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
            continue
        if isinstance(node, ast.Add | ast.Sub | ast.Mult | ast.Div | ast.USub | ast.UAdd):
            continue
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            continue
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            continue
        if isinstance(node, ast.Name):
            used.add(node.id)
            continue
        raise ValueError(
            f"only numbers, numeric feature names, + - * / and parentheses are allowed, "
            f"not {type(node).__name__} in {expression!r}"
        )
    unknown = sorted(used - names)
    if unknown:
        raise ValueError(f"uses {unknown}, which are not numeric features")
    if not used:
        raise ValueError(f"{expression!r} uses no feature (a constant is no feature)")
    return tree
