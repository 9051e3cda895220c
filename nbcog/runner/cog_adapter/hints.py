"""Type-hint helpers shared by the input and output schemas (cog's ``pkg/schema`` types).

cog's Go generator maps the same scalar types to the same JSON types on both sides, and reads
``Optional``, unions and ``Annotated[T, cog.Opaque]`` alike; only what each side then allows
differs, which ``input_schema`` and ``output_schema`` decide.
"""

from __future__ import annotations

import inspect
import pathlib
import types
import typing
from typing import Any

import cog
from cog.types import File, Path, Secret

SCALARS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    Path: {"type": "string", "format": "uri"},
    File: {"type": "string", "format": "uri"},
    Secret: {"type": "string", "format": "password", "writeOnly": True, "x-cog-secret": True},
}
ANY: dict[str, Any] = {"type": "object"}


def scalar_type(annotation: Any) -> Any | None:
    """The ``SCALARS`` key ``annotation`` stands for: any ``PurePath`` is cog's ``Path``."""
    if annotation in SCALARS:
        return annotation
    if inspect.isclass(annotation) and issubclass(annotation, pathlib.PurePath):
        return Path  # cog names every path type Path: a uri string
    return None


def is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def is_optional(annotation: Any) -> bool:
    """A union with ``None`` among its members (``Optional[T]``, ``T | None``)."""
    return is_union(annotation) and type(None) in typing.get_args(annotation)


def non_none_args(annotation: Any) -> list[Any]:
    """The type arguments of ``annotation`` other than ``None``."""
    return [arg for arg in typing.get_args(annotation) if arg is not type(None)]


def unwrap_opaque(annotation: Any) -> tuple[Any, bool]:
    """``(T, True)`` for ``Annotated[T, cog.Opaque, ...]``, else ``(annotation, False)``."""
    if typing.get_origin(annotation) is typing.Annotated:
        inner, *metadata = typing.get_args(annotation)
        if any(item is cog.Opaque for item in metadata):
            return inner, True
    return annotation, False


def opaque_schema(inner: Any) -> dict[str, Any]:
    """``Annotated[T, cog.Opaque]`` is not inspected: an object, or a list of objects."""
    is_list = inner is list or typing.get_origin(inner) is list
    return {"type": "array", "items": dict(ANY)} if is_list else dict(ANY)


def type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation)
