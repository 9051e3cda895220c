"""Describing one handler (``run``/``predict`` or ``train``): its schema and how to call it."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from nbcog.core.openapi import HandlerSchema
from nbcog.core.validation import inline_refs, validate_input
from nbcog.runner.cog_adapter.coercion import Coercion, Download, coerce_inputs, coercion_kind
from nbcog.runner.cog_adapter.input_schema import input_property, python_default
from nbcog.runner.cog_adapter.output_schema import output_schema
from nbcog.runner.cog_adapter.source_facts import SourceFacts

Kind = Literal["predict", "train"]

STREAMING_RETURN_ERROR = (
    "@streaming requires Iterator[...], AsyncIterator[...], ConcatenateIterator[...] "
    "or AsyncConcatenateIterator[...] return type"
)


@dataclass(frozen=True)
class HandlerInfo:
    """How to call one handler (``run``/``predict`` or ``train``) and what it accepts.

    Attributes:
        fn: the callable to invoke with the coerced inputs as keyword arguments.
        kind: ``predict`` or ``train``.
        is_async / is_async_gen / is_generator: how its result must be consumed.
        schema: its components for the OpenAPI document.
        output_is_array: ``Output.type`` is ``array`` (outputs are wrapped in lists, §10).
        streaming: decorated with ``@streaming`` (SSE allowed, §11).
        concurrency: ``@concurrent(max=N)``'s N, else 1.
        coercions: parameter name to ``secret``, ``path`` or ``file``, for ``coerce``.
    """

    fn: Callable[..., Any]
    kind: Kind
    is_async: bool
    is_async_gen: bool
    is_generator: bool
    schema: HandlerSchema
    output_is_array: bool
    streaming: bool
    concurrency: int
    coercions: Mapping[str, Coercion]

    def coerce(self, values: Mapping[str, Any], download: Download) -> dict[str, Any]:
        """Validated JSON values to call kwargs, as coglet's ``prepare_input`` does.

        Secrets, files and (downloaded with ``download``) paths, as ``coerce_inputs`` says.
        """
        return coerce_inputs(self.coercions, values, download)


def describe_handler(fn: Callable[..., Any], *, is_method: bool, kind: Kind) -> HandlerInfo:
    """Describe one handler; ``is_method`` means ``fn`` is bound (its ``self`` is skipped).

    Also replaces ``Input()`` defaults in the function's ``__defaults__``/``__kwdefaults__``
    by their ``.default``, as coglet does, so omitted inputs get the Python default. The
    originals are kept on the function, so describing it again gives the same schema.

    Raises:
        ValueError: the signature, a type or an ``Input()`` is not supported, or
            ``@streaming`` is used without an iterator return type, or a default does not
            fit its input (see ``_check_defaults``).
    """
    func = inspect.unwrap(getattr(fn, "__func__", fn))
    name = f"{fn.__name__}()"
    declared = _declared_defaults(func)
    facts = SourceFacts.of(func)
    hints = typing.get_type_hints(func, include_extras=True)
    plain_hints = typing.get_type_hints(func)
    params = list(inspect.signature(func).parameters.values())[1 if is_method else 0 :]
    returns = hints.get("return")
    if returns is None or returns is type(None):
        msg = f"{name} must have a return type annotation"
        raise ValueError(msg)

    properties: dict[str, Any] = {}
    required: list[str] = []
    enums: dict[str, dict[str, Any]] = {}
    coercions: dict[str, Coercion] = {}
    for order, param in enumerate(params):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            stars = "*args" if param.kind is param.VAR_POSITIONAL else "**kwargs"
            msg = f"{name} must not have {stars}"
            raise ValueError(msg)
        if param.name not in hints:
            msg = f"missing type annotation for input: {param.name}"
            raise ValueError(msg)
        prop, enum, is_required = input_property(
            param.name,
            order,
            hints[param.name],
            declared.get(param.name, inspect.Parameter.empty),
            facts.explicit_default.get(param.name, True),
        )
        properties[param.name] = prop
        if enum is not None:
            enums[param.name] = enum
        if is_required:
            required.append(param.name)
        coercion = coercion_kind(plain_hints[param.name])
        if coercion is not None:
            coercions[param.name] = coercion

    _check_defaults(properties, enums)
    output = {**output_schema(returns, frozenset()), "title": "Output"}
    if facts.streaming and "x-cog-array-type" not in output:
        raise ValueError(STREAMING_RETURN_ERROR)
    input_schema: dict[str, Any] = {
        "title": "TrainingInput" if kind == "train" else "Input",
        "type": "object",
        "properties": properties,
    }
    if required:
        input_schema["required"] = required
    return HandlerInfo(
        fn=fn,
        kind=kind,
        is_async=inspect.iscoroutinefunction(fn),
        is_async_gen=inspect.isasyncgenfunction(fn),
        is_generator=inspect.isgeneratorfunction(fn),
        schema=HandlerSchema(input_schema, output, enums, facts.streaming),
        output_is_array=output.get("type") == "array",
        streaming=facts.streaming,
        concurrency=getattr(fn, "__cog_concurrent_max__", 1),
        coercions=coercions,
    )


def _check_defaults(properties: Mapping[str, Any], enums: Mapping[str, Any]) -> None:
    """Reject a default that a request could not send: the input's own schema refuses it.

    ``count: int = Input(default="three")`` (or a default outside ``choices``, below ``ge``,
    ...) is a mistake nobody can work around from the client side. coglet 0.23.1 does not
    check: cog's schema generator writes ``"default": "three"`` next to ``"type": "integer"``,
    coglet serves it READY and calls ``run(count="three")`` whenever the input is omitted, so
    the mistake shows up later, if at all, as a TypeError inside the prediction. nbcog says
    so when the predictor is loaded (served, or its schema written), naming the input, with
    the 422 message coglet would give that value.

    Raises:
        ValueError: ``invalid default for input count: "three" is not of type "integer"``.
    """
    for name, prop in properties.items():
        default = prop.get("default")
        if default is None:  # no default, or an Optional input's None
            continue
        schema = {"type": "object", "properties": {name: inline_refs(prop, enums)}}
        _, errors = validate_input(schema, {name: default})
        if errors:
            problems = "; ".join(error["msg"] for error in errors)
            msg = f"invalid default for input {name}: {problems}"
            raise ValueError(msg)


def _declared_defaults(func: types.FunctionType) -> dict[str, Any]:
    """Each parameter's default as written, then ``Input()`` objects patched to their values.

    The first call stashes the written defaults on the function: after patching, the
    ``FieldInfo`` metadata (descriptions, constraints) lives only there.
    """
    stash: tuple[tuple[Any, ...], dict[str, Any]] = func.__dict__.setdefault(
        "__nbcog_declared_defaults__", (func.__defaults__ or (), dict(func.__kwdefaults__ or {}))
    )
    defaults, kwdefaults = stash
    code = func.__code__
    positional = code.co_varnames[: code.co_argcount]
    declared = (
        dict(zip(positional[len(positional) - len(defaults) :], defaults, strict=True)) | kwdefaults
    )
    if defaults:
        func.__defaults__ = tuple(python_default(value) for value in defaults)
    if kwdefaults:
        func.__kwdefaults__ = {key: python_default(value) for key, value in kwdefaults.items()}
    return declared
