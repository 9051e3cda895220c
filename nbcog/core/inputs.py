"""``-i key=value`` arguments to a prediction's JSON input, typed like ``cog predict -i``.

Each value is converted by the type its input has in the served ``Input`` schema:

* ``integer``/``number``/``boolean``: parsed (``true``/``false``, ``yes``/``no``, ``1``/``0``);
* files (``Path``, ``File``: ``format: uri``): a URL (``http(s)://``, ``data:``) is passed on
  as it is; a local path, or ``@path``, is read and sent as a ``data:`` URI, which the input
  coercion turns back into a file (a plain path string would reach ``predict()`` as ``str``,
  as it does over HTTP, spec §7);
* ``@path`` for any other type is the file's text (curl's ``-d @file``);
* arrays collect repeated keys (``-i img=a.png -i img=b.png``), or take a JSON ``[...]``;
* objects and unions take JSON; strings are taken as they are.

Errors are ``ValueError``s whose text is meant for the user (the magic turns them into
``UsageError``s); the server still validates everything (spec §7) after this.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nbcog.core.encoding import data_url, guess_mime

# The ``-i key=value`` option as ``%cog predict``, ``%cog export`` and ``nbcog export`` take it:
# ``parser.add_argument(*INPUT_FLAGS, **input_option(help))``.
INPUT_FLAGS = ("-i", "--input")
CHECK_INPUT_HELP = (
    "an input of --check's prediction (repeat; @path for files); default: the defaults"
)


def input_option(help: str) -> dict[str, Any]:
    """The ``argparse`` keywords of the repeatable ``-i key=value`` option."""
    return {"action": "append", "default": [], "metavar": "key=value", "help": help}


_URL_PREFIXES = ("http://", "https://", "data:")
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def _resolved(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """A ``choices`` property is ``{"allOf": [enum schema]}`` once refs are inlined."""
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], Mapping):
        return {**all_of[0], **{k: v for k, v in schema.items() if k != "allOf"}}
    return schema


def _is_file(schema: Mapping[str, Any]) -> bool:
    return schema.get("type") == "string" and schema.get("format") == "uri"


def _read_file(path: str, base: Path) -> Path:
    file = (base / path).expanduser()
    if not file.is_file():
        msg = f"no such file: {path}"
        raise ValueError(msg)
    return file


def _file_value(raw: str, base: Path) -> str:
    if raw.startswith(_URL_PREFIXES):
        return raw
    file = _read_file(raw.removeprefix("@"), base)
    return data_url(file.read_bytes(), guess_mime(file.name))


def _scalar(name: str, raw: str, schema: Mapping[str, Any], base: Path) -> Any:
    schema = _resolved(schema)
    if _is_file(schema):
        return _file_value(raw, base)
    if raw.startswith("@"):
        return _read_file(raw[1:], base).read_text()
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            number = float(raw)
            return (
                int(number)
                if number.is_integer() and "." not in raw and "e" not in raw.lower()
                else number
            )
    except ValueError:
        msg = (
            f"input {name!r} takes {'an integer' if kind == 'integer' else 'a number'}, not {raw!r}"
        )
        raise ValueError(msg) from None
    if kind == "boolean":
        lowered = raw.lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        msg = f"input {name!r} takes true or false, not {raw!r}"
        raise ValueError(msg)
    if kind == "string":
        return raw
    try:  # objects, unions, Any: JSON when it parses, else the text
        return json.loads(raw)
    except ValueError:
        return raw


def parse_inputs(
    pairs: Sequence[str], input_schema: Mapping[str, Any], base: Path | None = None
) -> dict[str, Any]:
    """Turn ``["key=value", ...]`` into the ``input`` object of a create request.

    Args:
        pairs: the ``-i`` arguments, in order.
        input_schema: the served ``Input`` schema with ``$ref``s inlined.
        base: where relative file paths start (the kernel's working directory).

    Raises:
        ValueError: a malformed pair, an unknown input, an unreadable file or a value that
            does not fit its type.
    """
    base = base or Path.cwd()
    properties: Mapping[str, Any] = input_schema.get("properties", {})
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            msg = f"expected key=value, got {pair!r}"
            raise ValueError(msg)
        if name not in properties:
            known = ", ".join(properties) or "none"
            msg = f"unknown input {name!r}; the inputs are: {known}"
            raise ValueError(msg)
        schema = _resolved(properties[name])
        if schema.get("type") != "array":
            values[name] = _scalar(name, raw, schema, base)
            continue
        items = values.setdefault(name, [])
        if raw.startswith("["):
            try:
                items.extend(json.loads(raw))
            except ValueError:
                msg = f"input {name!r}: {raw!r} is not a JSON array"
                raise ValueError(msg) from None
        else:
            items.append(_scalar(name, raw, schema.get("items", {}), base))
    return values


def example_input(input_schema: Mapping[str, Any]) -> dict[str, Any]:
    """Placeholder values for the required inputs, for a ready-to-edit curl line."""
    placeholders = {"string": "...", "integer": 1, "number": 1.0, "boolean": True}
    example: dict[str, Any] = {}
    properties: Mapping[str, Any] = input_schema.get("properties", {})
    for name in input_schema.get("required", []):
        schema = _resolved(properties.get(name, {}))
        if schema.get("enum"):
            example[name] = schema["enum"][0]
        elif _is_file(schema):
            example[name] = "https://example.com/input.png"
        elif schema.get("type") == "array":
            example[name] = []
        elif schema.get("type") == "object":
            example[name] = {}
        else:
            example[name] = placeholders.get(schema.get("type", "string"), "...")
    return example
