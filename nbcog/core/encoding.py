"""Turn a predictor's output value into plain JSON data, the way coglet 0.23.1 does (spec §10).

This module is stdlib only, like the rest of ``nbcog.core``: pydantic models and numpy values are
recognised by duck typing (numpy through ``sys.modules``, so a predictor that never imported
numpy costs nothing), never by importing those packages.

Top-level file chunks (a ``Path`` or a file object yielded or returned directly) are *not*
handled here: they may be uploaded, which is I/O, so ``nbcog.runner.files`` owns them. A file
found *inside* a value is always inlined as a base64 data URL, even when an upload URL is set:
coglet does that, and we copy it for parity.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import enum
import io
import json
import mimetypes
import os
import re
import sys
import types
from typing import Any

from nbcog.core.jsonenc import JSONSafeStr, is_json_safe

__all__ = ["data_url", "guess_mime", "is_file_chunk", "non_finite_error", "to_jsonable"]

_OCTET_STREAM = "application/octet-stream"
# Bytes base64-encoded at a time: a multiple of 3, so pieces join with no padding between
# them, and small enough that the temporary each piece makes is reused, not faulted in anew.
_BASE64_PIECE = 3 << 18
# A JSON string (skipped) or a token JSON has no room for (captured).
_NON_FINITE = re.compile(r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)')
# Exact types json.dumps takes as they are. Subclasses (IntEnum, numpy.float64, ...) go
# through the slower checks below so they come out as plain values.
_PLAIN = (str, int, float, bool, type(None))


def is_file_chunk(value: object) -> bool:
    """Whether ``value`` is a file output: an ``os.PathLike`` or an ``io.IOBase``."""
    return isinstance(value, (os.PathLike, io.IOBase))


def guess_mime(name: str) -> str:
    """The MIME type for a file name, from its extension, else ``application/octet-stream``."""
    return mimetypes.guess_type(name)[0] or _OCTET_STREAM


def data_url(data: bytes, mime: str) -> str:
    """``data:{mime};base64,{data}``, marked ``JSONSafeStr`` when ``mime`` needs no escaping.

    The base64 text is written piecewise into one buffer that already holds the prefix, then
    decoded once. On a VM a fresh 27 MB allocation (a 20 MB file's data URL) costs ~10 ms in
    page faults, as much as half the base64 work, so the usual encode-concatenate-decode
    chain's two extra copies are most of the cost. The mark lets responses copy it verbatim.
    """
    head = f"data:{mime};base64,"
    if not is_json_safe(mime):  # a mime type registered with a quote in it, say
        return head + base64.b64encode(data).decode("ascii")
    out = bytearray(len(head) + 4 * ((len(data) + 2) // 3))
    at = len(head)
    out[:at] = head.encode()
    view = memoryview(data)
    for start in range(0, len(view), _BASE64_PIECE):
        encoded = binascii.b2a_base64(view[start : start + _BASE64_PIECE], newline=False)
        out[at : at + len(encoded)] = encoded
        at += len(encoded)
    return JSONSafeStr(out, "ascii")


def non_finite_error(value: Any) -> str | None:
    """coglet's message for a JSON-ready chunk holding NaN or ±Infinity, else None.

    JSON has no such numbers. coglet's worker writes the chunk with Python's ``json.dumps``
    (which prints ``NaN``) and its Rust side fails to parse the text; serde's message points at
    the first bad token (live: ``{"abc": nan}`` gives column 9, ``-inf`` "invalid number").
    """
    for match in _NON_FINITE.finditer(json.dumps(value)):
        token = match.group(1)
        if token is not None:
            if token.startswith("-"):
                return f"invalid number at line 1 column {match.start() + 2}"
            return f"expected value at line 1 column {match.start() + 1}"
    return None


def to_jsonable(value: Any) -> Any:
    """Return ``value`` as JSON-ready data (dicts, lists, str, int, float, bool, None).

    Follows coglet's order, except that files are recognised first: paths and file objects as
    data URLs, pydantic ``model_dump()`` (v1: ``dict()``), dataclass instances (``cog.BaseModel``
    included) field by field, dicts, lists/tuples/sets/generators, ``Enum`` values, datetimes
    and dates as ISO strings, numpy arrays and scalars as lists and Python numbers.

    Raises:
        TypeError: ``Object of type <name> is not JSON serializable`` (``json.dumps``'s own
            text, which coglet reports) for anything else.
    """
    if type(value) in _PLAIN:
        return value
    # Files first: probing a lazy ``cog.URLFile`` for ``model_dump`` would open its URL.
    if isinstance(value, os.PathLike):
        return _path_data_url(value)
    if isinstance(value, io.IOBase):
        return _stream_data_url(value)
    if not isinstance(value, type):
        model_dump = getattr(value, "model_dump", None)
        if callable(model_dump):
            return to_jsonable(model_dump())
        legacy_dict = getattr(value, "dict", None)
        if callable(legacy_dict) and not isinstance(value, dict):
            return to_jsonable(legacy_dict())
        if dataclasses.is_dataclass(value):
            # Not dataclasses.asdict: it deep-copies every field, which fails on open files
            # and would bypass this encoder for nested values.
            return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {key: to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset, types.GeneratorType)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        if isinstance(value, numpy.ndarray):
            return to_jsonable(value.tolist())
        if isinstance(value, numpy.generic):
            return to_jsonable(value.item())
    if isinstance(value, (str, int, float)):
        return value
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _path_data_url(path: os.PathLike[Any]) -> str:
    """Inline the file at ``path``, typed by its extension."""
    name = os.fsdecode(path)
    with open(name, "rb") as fh:
        return data_url(fh.read(), guess_mime(name))


def _stream_data_url(stream: Any) -> str:
    """Inline an ``io.IOBase`` from its start, typed by its ``name`` (if it has a string one).

    ``stream`` is typed ``Any`` because ``io.IOBase`` itself declares no ``read()``.
    """
    if stream.seekable():
        stream.seek(0)
    content = stream.read()
    data = content.encode() if isinstance(content, str) else bytes(content)
    name = getattr(stream, "name", None)
    mime = guess_mime(name) if isinstance(name, str) else _OCTET_STREAM
    return data_url(data, mime)
