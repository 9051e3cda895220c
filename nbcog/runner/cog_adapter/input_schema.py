"""One handler parameter to its ``Input`` property (cog's ``pkg/schema``: ``ResolveInputType``,
``buildInputSchema``; spec §5)."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from dataclasses import dataclass
from typing import Any

from cog.input import FieldInfo
from cog.types import File, Path, Secret

from nbcog.core.openapi import title_case
from nbcog.runner.cog_adapter.hints import (
    ANY,
    SCALARS,
    is_optional,
    is_union,
    non_none_args,
    opaque_schema,
    scalar_type,
    type_name,
    unwrap_opaque,
)


@dataclass(frozen=True)
class _InputType:
    """A resolved input annotation.

    ``schema`` is the JSON type without ``nullable``; ``primitive`` is the scalar type, or a
    list's element type (``None`` for objects and unions), as Go's ``FieldType.Primitive``.
    """

    schema: dict[str, Any]
    nullable: bool = False
    primitive: Any = None
    union: bool = False


def input_property(
    name: str, order: int, annotation: Any, declared: Any, explicit: bool
) -> tuple[dict[str, Any], dict[str, Any] | None, bool]:
    """One ``Input`` property, its enum component (choices) and whether it is required.

    ``declared`` is the parameter's default as written (``inspect.Parameter.empty`` if none);
    ``explicit`` says whether an ``Input()`` default sets a default (see ``source_facts``).
    """
    try:
        resolved = _resolve_input(annotation)
    except ValueError as error:
        msg = f"invalid input field {name}: {error}"
        raise ValueError(msg) from None
    info = declared if isinstance(declared, FieldInfo) else FieldInfo()
    if declared is inspect.Parameter.empty or (isinstance(declared, FieldInfo) and not explicit):
        has_default, default = False, None
    else:
        has_default, default = True, python_default(declared)
    if info.accept is not None and resolved.primitive not in (Path, File):
        msg = f"accept is only valid on Path or File inputs (parameter '{name}')"
        raise ValueError(msg)
    constrained = (info.choices, info.ge, info.le, info.min_length, info.max_length, info.regex)
    if resolved.union and any(value is not None for value in constrained):
        msg = f"invalid input field {name}: constraints and choices are not supported on unions"
        raise ValueError(msg)

    prop: dict[str, Any] = {"x-order": order}
    enum = None
    if info.choices:
        enum_type = SCALARS.get(resolved.primitive, ANY)["type"]
        enum = {
            "title": name,
            "description": "An enumeration.",
            "enum": [_json_value(name, choice) for choice in info.choices],
            "type": enum_type,
        }
        prop["allOf"] = [{"$ref": f"#/components/schemas/{name}"}]
    else:
        prop["title"] = title_case(name)
        prop.update(resolved.schema)
    # `api_key: Secret = Input(default=None)` is an optional credential (cog's one exception
    # to "None on a non-nullable field means no default").
    bare_secret = resolved.primitive is Secret and resolved.schema.get("type") == "string"
    nullable = resolved.nullable or (bare_secret and has_default and default is None)
    effective = has_default and (default is not None or nullable)
    if effective:
        prop["default"] = _json_value(name, default)
    if nullable:
        prop["nullable"] = True
    for key, value in (
        ("description", info.description),
        ("minimum", _json_number(info.ge)),
        ("maximum", _json_number(info.le)),
        ("minLength", info.min_length),
        ("maxLength", info.max_length),
        ("pattern", info.regex),
        ("deprecated", True if info.deprecated else None),
        ("x-cog-accept", info.accept),
    ):
        if value is not None:
            prop[key] = value
    return prop, enum, not effective and (resolved.union or not resolved.nullable)


def python_default(value: Any) -> Any:
    """The value an omitted input gets: an ``Input()``'s ``.default``, else the default itself."""
    return value.default if isinstance(value, FieldInfo) else value


def _resolve_input(annotation: Any) -> _InputType:
    inner, opaque = unwrap_opaque(annotation)
    if opaque:
        return _opaque_input(inner)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _resolve_input(args[0])
    if is_union(annotation):
        nullable = type(None) in args
        arms = non_none_args(annotation)
        members = [_resolve_input(arm) for arm in arms]
        if len(members) == 1:
            return dataclasses.replace(members[0], nullable=True)
        for member, arm in zip(members, arms, strict=True):
            if member.nullable or member.union:
                msg = "unsupported type: nested nullable variants are not supported in union inputs"
                raise ValueError(msg)
            if member.primitive in (Path, File, Secret):
                msg = f"unsupported type: {type_name(arm)} is not supported in union inputs"
                raise ValueError(msg)
        variants = [{**m.schema, "nullable": True} if nullable else m.schema for m in members]
        return _InputType({"anyOf": variants}, nullable=nullable, union=True)
    if annotation is list or origin is list:
        element = _resolve_input(args[0]) if args else _InputType(dict(ANY))
        if element.nullable or element.union or element.schema.get("type") == "array":
            msg = "unsupported type: nested generics like List[Optional[X]] are not supported"
            raise ValueError(msg)
        return _InputType({"type": "array", "items": element.schema}, primitive=element.primitive)
    if annotation is Any or annotation is dict or origin is dict or typing.is_typeddict(annotation):
        return _InputType(dict(ANY))
    scalar = scalar_type(annotation)
    if scalar is not None:
        return _InputType(dict(SCALARS[scalar]), primitive=scalar)
    msg = f"unsupported type: {type_name(annotation)}"
    raise ValueError(msg)


def _opaque_input(inner: Any) -> _InputType:
    """``Annotated[T, cog.Opaque]``: an object, or a list of objects, maybe nullable."""
    if is_optional(inner):
        return dataclasses.replace(_opaque_input(non_none_args(inner)[0]), nullable=True)
    return _InputType(opaque_schema(inner))


def _json_value(name: str, value: Any) -> Any:
    """A default or choice as the JSON cog's Go generator writes (``1.0`` is written ``1``)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return _json_number(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_value(name, item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_value(name, item) for key, item in value.items()}
    msg = f"invalid input field {name}: default {value!r} is not a JSON value"
    raise ValueError(msg)


def _json_number(value: float | None) -> float | None:
    """Go encodes float64 without a fraction when it has none; coglet re-reads it as an int."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    return value
