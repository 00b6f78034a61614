"""The text of a SQL source's query: one SELECT statement, told apart without a SQL parser.

Light on purpose (``re`` only): the spec checks queries at DAG parse time.
"""

from __future__ import annotations

import re


def _sql_scan(query: str) -> str:
    """The query's code with comments and quoted text blanked.

    Knows '...' strings (E'...' with backslash escapes), "..." and `...` identifiers, -- and
    nested /* */ comments and PostgreSQL $tag$ quoting: enough to tell one statement from several.
    """
    code: list[str] = []
    i, n = 0, len(query)
    while i < n:
        char, two = query[i], query[i : i + 2]
        if two == "--":
            end = query.find("\n", i)
            i = n if end < 0 else end
            code.append(" ")
            continue
        if two == "/*":
            depth, i = 1, i + 2
            while i < n and depth:
                if query.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif query.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            code.append(" ")
            continue
        dollar = re.match(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$", query[i:]) if char == "$" else None
        if dollar:
            tag = dollar.group(0)
            end = query.find(tag, i + len(tag))
            i = n if end < 0 else end + len(tag)
            code.append(" '' ")
            continue
        if char in "'\"`":
            backslash = char == "'" and i > 0 and query[i - 1] in "eE" and (i < 2 or not query[i - 2].isalnum())
            i += 1
            while i < n:
                if backslash and query[i] == "\\":
                    i += 2
                    continue
                if query[i] == char:
                    if query[i + 1 : i + 2] == char:  # a doubled quote is the quote itself
                        i += 2
                        continue
                    break
                i += 1
            i += 1
            code.append(" '' " if char == "'" else ' "" ')
            continue
        code.append(char)
        i += 1
    return "".join(code)


def check_select_query(query: str) -> str:
    """Refuse anything but one SELECT (or WITH ... SELECT) statement; return it without a trailing ``;``."""
    code = _sql_scan(query)
    statements = [part for part in code.split(";") if part.strip()]
    if not statements:
        raise ValueError("the query is empty")
    if len(statements) > 1:
        raise ValueError(
            f"holds {len(statements)} statements separated by ';'; give one SELECT (or WITH ... SELECT) statement"
        )
    first = re.match(r"[\s(]*([A-Za-z_]+)", statements[0])
    keyword = first.group(1).lower() if first else ""
    if keyword not in ("select", "with"):
        raise ValueError(f"must be a SELECT (or WITH ... SELECT) statement, not {keyword.upper() or 'this'}")
    return _without_trailing_semicolons(query)


def _without_trailing_semicolons(query: str) -> str:
    """Cut ``;`` (and comments) after the statement: the query is wrapped as a subquery."""
    query = query.strip()
    while _sql_scan(query).rstrip().endswith(";"):
        query = query[: query.rindex(";")].rstrip()  # a ';' after it in a comment goes first, then this one
    return query
