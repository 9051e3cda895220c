"""Input validation against the ``Input`` schema, with coglet's exact 422 messages (spec §7).

coglet validates with the Rust ``jsonschema`` crate (0.29): unknown keys are stripped first,
every error is collected, and each message prints the offending value as ``serde_json``
prints it (compact, keys sorted). This module re-implements the handful of keywords nbcog's
own schema generator emits (``type``, ``minimum``/``maximum``, ``minLength``/``maxLength``,
``pattern``, ``enum``, ``allOf``, ``anyOf``, ``items``) rather than general JSON Schema.

The crate walks a schema's keywords in key order (serde_json's map is sorted), so the errors
of one value come out alphabetically by keyword (``enum`` before ``type``), and ``properties``
(sorted by name) before ``required``. ``nullable``, ``format``, ``default`` and the ``x-``
extensions are annotations: ignored, which is why an explicit ``null`` fails ``type``.
"""

from __future__ import annotations

import decimal
import json
import math
import re
from collections.abc import Mapping
from typing import Any, TypeGuard

_REF_PREFIX = "#/components/schemas/"
_ANY_OF = "is not valid under any of the schemas listed in the 'anyOf' keyword"
_U64_MAX = 2**64 - 1
_I64_MIN = -(2**63)


def inline_refs(schema: Any, components: Mapping[str, Any]) -> Any:
    """A copy of ``schema`` with every ``{"$ref": "#/components/schemas/X"}`` replaced by X.

    As coglet does before compiling its validator: the object holding the ``$ref`` is replaced
    whole (siblings dropped), and the inlined schema is itself resolved. Unknown refs stay.
    """
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
            target = components.get(ref.removeprefix(_REF_PREFIX))
            if target is not None:
                return inline_refs(target, components)
        return {key: inline_refs(value, components) for key, value in schema.items()}
    if isinstance(schema, list):
        return [inline_refs(item, components) for item in schema]
    return schema


def validate_input(
    schema: dict[str, Any], payload: object
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Check a request's ``input`` against an ``Input`` schema whose refs are inlined.

    Returns:
        ``(values, errors)``. ``values`` holds only the schema's known keys (unknown keys are
        dropped, defaults are not filled), plus ``None`` for each omitted field that is
        nullable, not required and has no ``default`` (coglet injects those so a bare
        ``x: Optional[str]`` parameter gets its value). ``errors`` are the ``detail`` entries
        of a 422 response, in coglet's order; empty when the input is valid.
    """
    if not isinstance(payload, dict):
        return {}, [_error("__root__", msg) for _, msg in _check(schema, payload, "")]
    properties: dict[str, Any] = schema.get("properties", {})
    required: list[str] = schema.get("required", [])
    values = {key: value for key, value in payload.items() if key in properties}
    errors = [
        _error(path, msg)
        for name in sorted(values)
        for path, msg in _check(properties[name], values[name], name)
    ]
    errors += [
        {"loc": ["body", "input", name], "msg": "Field required", "type": "value_error.missing"}
        for name in required
        if name not in values
    ]
    for name, prop in properties.items():
        if prop.get("nullable") is True and "default" not in prop and name not in required:
            values.setdefault(name, None)
    return values, errors


def _error(field: str, msg: str) -> dict[str, Any]:
    return {"loc": ["body", "input", field], "msg": msg, "type": "value_error"}


def _check(schema: Any, value: Any, path: str) -> list[tuple[str, str]]:
    """Every ``(path, message)`` for ``value``, keywords taken in sorted order like the crate."""
    if not isinstance(schema, dict):
        return []
    show = serde_display
    errors: list[tuple[str, str]] = []
    for keyword in sorted(schema):
        rule = schema[keyword]
        if keyword == "allOf":
            for sub in rule:
                errors += _check(sub, value, path)
        elif keyword == "anyOf":
            if not any(not _check(sub, value, path) for sub in rule):
                errors.append((path, f"{show(value)} {_ANY_OF}"))
        elif keyword == "enum":
            if not any(_json_equal(value, option) for option in rule):
                errors.append((path, f"{show(value)} is not one of {show(rule)}"))
        elif keyword == "items" and isinstance(value, list):
            for index, item in enumerate(value):
                errors += _check(rule, item, f"{path}/{index}")
        elif keyword == "minimum" and _is_number(value) and value < rule:
            errors.append((path, f"{show(value)} is less than the minimum of {show(rule)}"))
        elif keyword == "maximum" and _is_number(value) and value > rule:
            errors.append((path, f"{show(value)} is greater than the maximum of {show(rule)}"))
        elif keyword in ("minLength", "maxLength") and isinstance(value, str):
            if len(value) < rule if keyword == "minLength" else len(value) > rule:
                relation = "shorter" if keyword == "minLength" else "longer"
                plural = "" if rule == 1 else "s"
                errors.append((path, f"{show(value)} is {relation} than {rule} character{plural}"))
        elif keyword == "pattern" and isinstance(value, str):
            if not _compile(rule).search(value):
                errors.append((path, f'{show(value)} does not match "{rule}"'))
        elif keyword == "type" and not _is_type(value, rule):
            errors.append((path, f'{show(value)} is not of type "{rule}"'))
    return errors


def _compile(pattern: str) -> re.Pattern[str]:
    """The crate translates ECMA-262 classes to ASCII ones (``\\d`` is ``[0-9]``), as ASCII does."""
    return re.compile(pattern, re.ASCII)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_type(value: object, name: str) -> bool:
    """JSON Schema types over parsed JSON; a float with no fraction is an integer (``3.0``)."""
    if name == "integer":
        return _is_number(value) and (isinstance(value, int) or float(value).is_integer())
    checks: dict[str, Any] = {
        "string": lambda v: isinstance(v, str),
        "number": _is_number,
        "boolean": lambda v: isinstance(v, bool),
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "null": lambda v: v is None,
    }
    return bool(checks[name](value))


def _json_equal(left: object, right: object) -> bool:
    """JSON equality: numbers by value (``1 == 1.0``), but ``true`` is never ``1``."""
    if _is_number(left) and _is_number(right):
        return left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_json_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_json_equal(left[k], right[k]) for k in left)
    return type(left) is type(right) and left == right


def serde_display(value: Any) -> str:
    """``value`` as serde_json's ``Display`` prints it: compact, keys sorted, floats its way.

    Integers outside the 64-bit range were parsed by serde_json as floats, so they print as
    floats too.
    """
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        return str(value) if _I64_MIN <= value <= _U64_MAX else _float(float(value))
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, list):
        return "[" + ",".join(serde_display(item) for item in value) + "]"
    if isinstance(value, dict):
        items = (f"{serde_display(key)}:{serde_display(value[key])}" for key in sorted(value))
        return "{" + ",".join(items) + "}"
    return json.dumps(value, ensure_ascii=False)


def _float(value: float) -> str:
    """Shortest round-trip digits laid out as serde_json 1.0.149 does (``1e+16``, ``1e-7``).

    Decimal notation while the decimal exponent is in [-5, 16), always with a fraction
    (``3.0``); scientific otherwise, with a sign but no zero padding in the exponent.
    """
    if not math.isfinite(value):
        return "null"
    sign, digits_tuple, exponent = decimal.Decimal(repr(value)).normalize().as_tuple()
    digits = "".join(map(str, digits_tuple))
    if digits == "0":
        return "-0.0" if sign else "0.0"
    point = len(digits) + int(exponent)  # position of the decimal point relative to the digits
    prefix = "-" if sign else ""
    if 0 < point <= 16:
        whole, fraction = digits[:point].ljust(point, "0"), digits[point:] or "0"
        return f"{prefix}{whole}.{fraction}"
    if -5 < point <= 0:
        return f"{prefix}0.{'0' * -point}{digits}"
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{prefix}{mantissa}e{point - 1:+}" if point > 0 else f"{prefix}{mantissa}e{point - 1}"
