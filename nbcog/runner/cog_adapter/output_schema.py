"""A handler's return type to its ``Output`` schema (cog's ``pkg/schema``:
``ResolveSchemaType``, ``SchemaType.JSONSchema``; spec §5)."""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import sys
import typing
from typing import Any

import cog
from cog.types import AsyncConcatenateIterator, ConcatenateIterator

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

_OPTIONAL_OUTPUT = "unsupported output type: Optional is not allowed as a return type"
_UNION_OUTPUT = "unsupported type: union types are not supported as output"
_ITERATORS = (collections.abc.Iterator, collections.abc.AsyncIterator)
_CONCATENATE = (ConcatenateIterator, AsyncConcatenateIterator)
_KEY_MARKS = ("Required", "NotRequired")  # TypedDict key qualifiers, by name for typing_extensions


def output_schema(annotation: Any, seen: frozenset[type]) -> dict[str, Any]:
    """The JSON schema of a return type (or a model field's type), without the title.

    ``seen`` holds the models being described around this type, to stop at recursion.
    """
    inner, opaque = unwrap_opaque(annotation)
    if opaque:
        if is_optional(inner):
            raise ValueError(_OPTIONAL_OUTPUT)
        return opaque_schema(inner)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return output_schema(args[0], seen)
    if annotation is Any:
        return dict(ANY)
    if _is_model(annotation):
        return _model_schema(annotation, seen)
    if is_union(annotation):
        raise ValueError(_OPTIONAL_OUTPUT if type(None) in args else _UNION_OUTPUT)
    if annotation is list or origin is list:
        return {"type": "array", "items": output_schema(args[0], seen) if args else dict(ANY)}
    if annotation is dict or origin is dict:
        if len(args) == 2:
            return {"type": "object", "additionalProperties": output_schema(args[1], seen)}
        return dict(ANY)
    concatenate = annotation in _CONCATENATE or origin in _CONCATENATE
    if concatenate or annotation in _ITERATORS or origin in _ITERATORS:
        if len(args) != 1:
            name = type_name(origin or annotation)
            msg = f"unsupported type: {name} expects exactly 1 type argument"
            raise ValueError(msg)
        if concatenate and args[0] is not str:
            msg = f"ConcatenateIterator element type must be str, got {type_name(args[0])}"
            raise ValueError(msg)
        schema = {
            "type": "array",
            "items": output_schema(args[0], seen),
            "x-cog-array-type": "iterator",
        }
        return {**schema, "x-cog-array-display": "concatenate"} if concatenate else schema
    scalar = scalar_type(annotation)
    if scalar is not None:
        return dict(SCALARS[scalar])
    msg = f"unsupported type: {type_name(annotation)} is not a supported output type"
    raise ValueError(msg)


def _field_schema(annotation: Any, seen: frozenset[type]) -> tuple[dict[str, Any], bool]:
    """A model field's schema, and whether it is nullable: there ``Optional[T]`` is allowed."""
    inner, opaque = unwrap_opaque(annotation)
    origin = typing.get_origin(annotation)
    if not opaque and (origin is typing.Annotated or getattr(origin, "_name", "") in _KEY_MARKS):
        return _field_schema(typing.get_args(annotation)[0], seen)
    if is_optional(inner):
        rest = _only_member(inner)
        schema = opaque_schema(rest) if opaque else output_schema(rest, seen)
        return {**schema, "nullable": True}, True
    return output_schema(annotation, seen), False


def _only_member(optional: Any) -> Any:
    """``T`` of ``Optional[T]``; an optional union of several types is not supported."""
    members = non_none_args(optional)
    if len(members) != 1:
        raise ValueError(_UNION_OUTPUT)
    return members[0]


def _is_model(annotation: Any) -> bool:
    """A ``cog.BaseModel``, a pydantic model or a ``TypedDict``: an object with properties."""
    if not inspect.isclass(annotation):
        return False
    pydantic = sys.modules.get("pydantic")
    return (
        issubclass(annotation, cog.BaseModel)
        or typing.is_typeddict(annotation)
        or (pydantic is not None and issubclass(annotation, pydantic.BaseModel))
    )


def _model_schema(model: Any, seen: frozenset[type]) -> dict[str, Any]:
    """Properties in field order, each titled; required unless Optional or defaulted.

    A model that contains itself is an opaque object at the second level, as in cog.
    ``model`` is Any: TypedDicts, dataclasses and pydantic models share no static type, and
    they are told apart below at run time.
    """
    if model in seen:
        return dict(ANY)
    hints = typing.get_type_hints(model, include_extras=True)
    if typing.is_typeddict(model):
        # A key is required by totality, Required[] and NotRequired[], not by Optional. The
        # marks are read from the hints: __required_keys__ misses them under postponed
        # annotations (`from __future__ import annotations`) before Python 3.12.
        marks = {
            name: getattr(typing.get_origin(hint), "_name", "") for name, hint in hints.items()
        }
        fields = [
            (
                name,
                marks[name] == "NotRequired"
                or (name not in model.__required_keys__ and marks[name] != "Required"),
            )
            for name in hints
        ]
        key_required = True
    elif dataclasses.is_dataclass(model):
        missing = dataclasses.MISSING
        fields = [
            (f.name, f.default is not missing or f.default_factory is not missing)
            for f in dataclasses.fields(model)
        ]
        key_required = False
    else:  # pydantic
        fields = [(name, not info.is_required()) for name, info in model.model_fields.items()]
        key_required = False
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, has_default in fields:
        schema, nullable = _field_schema(hints[name], seen | {model})
        properties[name] = {**schema, "title": title_case(name)}
        if not has_default and (key_required or not nullable):
            required.append(name)
    result: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        result["required"] = required
    return result
