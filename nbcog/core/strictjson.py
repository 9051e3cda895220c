"""Parsing a request body as JSON the way coglet (serde_json) does, with its messages.

Python's ``json`` is laxer than serde_json in ways a hostile client can use:

* it accepts lone UTF-16 surrogates (``"\\udfff"``), which no UTF-8 encoder can write back, so
  such an id or input later breaks whatever encodes it (a start event, a PUT-attach body);
* it accepts ``NaN`` and ``Infinity``, which are not JSON;
* ``json.loads(bytes)`` guesses UTF-16/32 and skips a UTF-8 BOM;
* it recurses once per nesting level, so 100,000 ``[`` raise ``RecursionError``.

``loads`` rejects all of these with ``JSONBodyError`` and a serde-like message: the JSON path
of the value (``id``, ``input.text``, ``input[0][0]``, as ``serde_path_to_error`` prints it),
what is wrong, and ``at line L column C``. Nesting is bounded at serde_json's 128 levels.
The checks cost a few C-speed scans of the text, and the path walk runs only on failure.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["MAX_DEPTH", "JSONBodyError", "loads", "scrub_surrogates"]

MAX_DEPTH = 128
"""serde_json's recursion limit: the 128th nested array or object is refused (live)."""

# A \u escape for a surrogate: a lead (D800-DBFF) must be followed by a trail escape
# (DC00-DFFF), and a trail must follow a lead.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_LEAD = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})")
_LONE_TRAIL = re.compile(r"(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")
# A string (skipped whole) or a bracket.
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_NON_FINITE = re.compile(r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)')


class JSONBodyError(ValueError):
    """The body is not JSON that coglet would accept; ``str(exc)`` is the detail."""


class _NonFinite:
    """Stands in for a ``NaN``/``Infinity`` token until its path has been found."""


_NON_FINITE_MARK = _NonFinite()


def scrub_surrogates(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD, so it always encodes as UTF-8.

    ``os.fsdecode(b"\\xff")`` is ``"\\udcff"``: a predictor that prints undecodable bytes, or
    raises an exception quoting them, would otherwise break every JSON body that carries it.
    """
    if text.isascii():
        return text
    return _SURROGATE.sub("\ufffd", text)


def loads(body: bytes) -> Any:
    """Decode a UTF-8 JSON body strictly.

    Raises:
        JSONBodyError: invalid UTF-8, a BOM, invalid JSON, a lone surrogate escape, ``NaN`` or
            ``Infinity``, or nesting deeper than ``MAX_DEPTH``.
    """
    try:
        text = body.decode("utf-8")
        bad_byte = None
    except UnicodeDecodeError as exc:
        # Keep going with the bad bytes as U+DCxx so the path of the broken string is found.
        text = body.decode("utf-8", "surrogateescape")
        bad_byte = len(body[: exc.start].decode("utf-8", "surrogateescape")) + 1
    if text.startswith("\ufeff"):
        raise JSONBodyError("expected value at line 1 column 1")
    if body.count(b"[") + body.count(b"{") >= MAX_DEPTH:
        _check_depth(text)
    non_finite: list[int] = []

    def constant(_token: str) -> _NonFinite:
        non_finite.append(1)
        return _NON_FINITE_MARK

    try:
        value = json.loads(text, parse_constant=constant)
    except json.JSONDecodeError as exc:
        if bad_byte is not None:
            raise JSONBodyError(f"invalid unicode code point at {_where(text, bad_byte)}") from None
        raise JSONBodyError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:  # only if MAX_DEPTH is above Python's own limit
        raise JSONBodyError("recursion limit exceeded") from None
    if bad_byte is not None:
        path = _path_of(value, lambda item: isinstance(item, str) and _has_surrogate(item))
        raise JSONBodyError(
            _prefix(path) + f"invalid unicode code point at {_where(text, bad_byte)}"
        )
    if non_finite:
        _raise_non_finite(text, value)
    # One memchr for a backslash spares the regex scan of bodies without escapes.
    if body.find(b"\\") >= 0 and _SURROGATE_ESCAPE.search(text) is not None:
        _check_surrogates(text, value)
    return value


def _check_depth(text: str) -> None:
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        bracket = match.group()
        if bracket in "[{":
            depth += 1
            if depth >= MAX_DEPTH:
                raise JSONBodyError(f"recursion limit exceeded at {_where(text, match.end())}")
        elif bracket in "]}":
            depth -= 1


def _raise_non_finite(text: str, value: Any) -> None:
    path = _path_of(value, lambda item: item is _NON_FINITE_MARK)
    for match in _NON_FINITE.finditer(text):
        token = match.group(1)
        if token is not None:
            if token.startswith("-"):
                raise JSONBodyError(
                    _prefix(path) + f"invalid number at {_where(text, match.start() + 1)}"
                )
            raise JSONBodyError(_prefix(path) + f"expected value at {_where(text, match.start())}")
    raise JSONBodyError(_prefix(path) + "expected value")


def _check_surrogates(text: str, value: Any) -> None:
    path = _path_of(value, lambda item: isinstance(item, str) and _has_surrogate(item))
    if path is None:
        return  # the escapes were paired (or an escaped backslash followed by "ud8..")
    lead, trail = _LONE_LEAD.search(text), _LONE_TRAIL.search(text)
    if lead is not None and (trail is None or lead.start() < trail.start()):
        # serde wants the trail escape right after the lead: it points at what came instead.
        message = f"unexpected end of hex escape at {_where(text, lead.end())}"
    elif trail is not None:
        message = f"lone leading surrogate in hex escape at {_where(text, trail.end() - 1)}"
    else:
        message = "lone surrogate in hex escape"
    raise JSONBodyError(_prefix(path) + message)


def _has_surrogate(text: str) -> bool:
    return not text.isascii() and _SURROGATE.search(text) is not None


def _where(text: str, offset: int) -> str:
    """``line L column C`` of the character at ``offset`` (1-based, as serde counts)."""
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"line {line} column {column}"


def _prefix(path: str | None) -> str:
    """``path: `` with any bad key character shown as U+FFFD (the message must encode)."""
    return f"{scrub_surrogates(path)}: " if path else ""


def _path_of(value: Any, bad: Any) -> str | None:
    """The serde path (``a.b[0]``) of the first item, in document order, that ``bad`` flags.

    Keys are checked before their values. Iterative, so any depth ``json`` produced is fine.
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if bad(item):
            return path
        if isinstance(item, dict):
            children: list[tuple[str, Any]] = []
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else key
                if bad(key):
                    return child_path
                children.append((child_path, child))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", child) for i, child in reversed(list(enumerate(item))))
    return None
