"""Loading a Cog predictor and describing its handlers: schema, coercions, call style.

coglet never inspects types itself: ``cog build`` parses the predictor's source with cog's Go
generator (``pkg/schema``) into ``.cog/openapi_schema.json``, and coglet validates against
that. nbcog has no build step, so this module derives the same ``Input``/``Output`` components
from the live objects (type hints, ``Input()`` metadata, decorators), following the Go rules
(spec §5), and prepares call kwargs as coglet's ``input.rs`` does (spec §7).

Two facts are only visible in the source, so the handler's source is parsed with ``ast``
(``inspect.getsource`` also finds IPython cells, which IPython registers in ``linecache``):
``@streaming`` is an identity decorator, and ``Input(description=...)`` cannot be told from
``Input(default=None)`` at runtime although the Go generator treats them differently.
Without source, a handler is not streaming and every ``Input()`` counts as having a default.

Predictors defined in ``__main__`` (notebook cells) are described from the objects
themselves: nothing here re-imports a module by name. This is the only runner module, with
``scope.py``, that imports cog.
"""

from __future__ import annotations

import ast
import builtins
import collections.abc
import concurrent.futures
import dataclasses
import importlib
import importlib.util
import inspect
import os
import pathlib
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import cog
from cog import CancelationException
from cog.input import FieldInfo
from cog.types import AsyncConcatenateIterator, ConcatenateIterator, File, Path, Secret

from nbcog.core.openapi import HandlerSchema, title_case

__all__ = [
    "STREAMING_RETURN_ERROR",
    "CancelationException",
    "HandlerInfo",
    "PredictorInfo",
    "describe_handler",
    "describe_predictor",
    "load_target",
]

Kind = Literal["predict", "train"]
Download = Callable[[str], str]

STREAMING_RETURN_ERROR = (
    "@streaming requires Iterator[...], AsyncIterator[...], ConcatenateIterator[...] "
    "or AsyncConcatenateIterator[...] return type"
)
_OPTIONAL_OUTPUT = "unsupported output type: Optional is not allowed as a return type"
_MAX_DOWNLOADS = 8
_URL_PREFIXES = ("http://", "https://", "data:")
_FRAMEWORK_CLASSES = (cog.BaseRunner, cog.BasePredictor, object)
_SCALARS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    Path: {"type": "string", "format": "uri"},
    File: {"type": "string", "format": "uri"},
    Secret: {"type": "string", "format": "password", "writeOnly": True, "x-cog-secret": True},
}
_ANY: dict[str, Any] = {"type": "object"}
_ITERATORS = (collections.abc.Iterator, collections.abc.AsyncIterator)
_CONCATENATE = (ConcatenateIterator, AsyncConcatenateIterator)
_KEY_MARKS = ("Required", "NotRequired")  # TypedDict key qualifiers, by name for typing_extensions


# -- loading --------------------------------------------------------------------------------


def load_target(ref_or_obj: object) -> object:
    """Turn what the user gave into a predictor instance or a handler function.

    Accepts a class (validated, then instantiated), an instance, a function, or a reference
    ``path/to/file.py:Name`` / ``package.module:Name``; without ``:Name`` the module's
    ``Runner``, else its ``Predictor``, is used (as ``cog.predictor.load_predictor_from_ref``).
    A class that defines ``train()`` and neither ``run()`` nor ``predict()`` is accepted as a
    training-only class.

    Raises:
        ValueError: ``<Name> must define either run() or predict(), not both`` or
            ``run or predict method not found: <Name>``.
    """
    target = _resolve_ref(ref_or_obj) if isinstance(ref_or_obj, str) else ref_or_obj
    if inspect.isclass(target):
        _check_class(target)
        return target()
    if not (inspect.isfunction(target) or inspect.ismethod(target)):
        _check_class(type(target))
    return target


def _resolve_ref(ref: str) -> object:
    path, _, name = ref.partition(":")
    module = _load_file(path) if path.endswith(".py") else importlib.import_module(path)
    if name:
        return getattr(module, name)
    runner = getattr(module, "Runner", None)
    runner_error = _class_error(runner) if inspect.isclass(runner) else None
    if callable(runner) and runner_error is None:
        return runner
    if hasattr(module, "Predictor"):
        return module.Predictor
    if runner_error is not None:
        raise runner_error
    if runner is not None:
        msg = "Runner exists but is not a class or callable"
        raise TypeError(msg)
    msg = f"module {module.__name__!r} has no Runner or Predictor"
    raise AttributeError(msg)


def _load_file(path: str) -> types.ModuleType:
    """Execute a predictor file as cog does: named after the file, registered in sys.modules."""
    module_name = os.path.basename(path).removesuffix(".py")
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        msg = f"Cannot load module from {path}"
        raise ImportError(msg)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickle look the module up by name
    spec.loader.exec_module(module)
    return module


def _user_method_owner(cls: type, name: str) -> type | None:
    """The class in ``cls``'s MRO that defines ``name``, stopping at cog's base classes."""
    for owner in inspect.getmro(cls):
        if owner in _FRAMEWORK_CLASSES:
            break
        if callable(owner.__dict__.get(name)):
            return owner
    return None


def _predict_method(cls: type) -> str | None:
    """``run`` or (deprecated) ``predict``, whichever the class defines; never both."""
    defines_run = _user_method_owner(cls, "run") is not None
    defines_predict = _user_method_owner(cls, "predict") is not None
    if defines_run and defines_predict:
        msg = f"{cls.__name__} must define either run() or predict(), not both"
        raise ValueError(msg)
    return "run" if defines_run else "predict" if defines_predict else None


def _class_error(cls: type) -> ValueError | None:
    try:
        _check_class(cls)
    except ValueError as error:
        return error
    return None


def _check_class(cls: type) -> None:
    if _predict_method(cls) is None and _user_method_owner(cls, "train") is None:
        msg = f"run or predict method not found: {cls.__name__}"
        raise ValueError(msg)


# -- describing -----------------------------------------------------------------------------


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
    coercions: Mapping[str, str]

    def coerce(self, values: Mapping[str, Any], download: Download) -> dict[str, Any]:
        """Validated JSON values to call kwargs, as coglet's ``prepare_input`` does.

        ``Secret`` strings become ``cog.Secret``; ``File`` URLs become ``cog.URLFile`` or
        ``io.BytesIO`` (data URIs); ``Path`` URLs (``http(s)://``, ``data:``, also inside
        lists) are fetched with ``download`` (which returns a local file name), up to 8 at
        once, and become ``cog.Path``. Every other value, other strings included, is unchanged.
        ``download``'s exceptions propagate.
        """
        kwargs = dict(values)
        jobs: list[tuple[str, int | None, str]] = []
        for name, kind in self.coercions.items():
            value = kwargs.get(name)
            if kind == "secret":
                if isinstance(value, str):
                    kwargs[name] = Secret(value)
            elif isinstance(value, str) and value.startswith(_URL_PREFIXES):
                if kind == "file":
                    kwargs[name] = File.validate(value)
                else:
                    jobs.append((name, None, value))
            elif isinstance(value, list):
                items = kwargs[name] = list(value)
                for index, item in enumerate(items):
                    if isinstance(item, str) and item.startswith(_URL_PREFIXES):
                        if kind == "file":
                            items[index] = File.validate(item)
                        else:
                            jobs.append((name, index, item))
        if jobs:
            with concurrent.futures.ThreadPoolExecutor(min(len(jobs), _MAX_DOWNLOADS)) as pool:
                local = list(pool.map(download, [url for _, _, url in jobs]))
            for (name, index, _), filename in zip(jobs, local, strict=True):
                if index is None:
                    kwargs[name] = Path(filename)
                else:
                    kwargs[name][index] = Path(filename)
        return kwargs


@dataclass(frozen=True)
class PredictorInfo:
    """A loaded predictor: its lifecycle hooks and its handlers.

    ``setup`` receives ``weights=`` (``COG_WEIGHTS`` or ``None``) when
    ``setup_takes_weights``; ``healthcheck`` is ``None`` when the predictor has none.
    """

    name: str
    setup: Callable[..., Any] | None
    setup_takes_weights: bool
    setup_is_async: bool
    healthcheck: Callable[[], Any] | None
    predict: HandlerInfo | None
    train: HandlerInfo | None


def describe_predictor(target: object, *, kind: Kind = "predict") -> PredictorInfo:
    """Describe what ``load_target`` returned.

    A function becomes the ``kind`` handler. An instance has its ``run()``/``predict()`` as
    predict and its ``train()``, if defined, as train; ``kind`` names the one it must have.
    """
    if inspect.isfunction(target) or inspect.ismethod(target):
        handler = describe_handler(target, is_method=inspect.ismethod(target), kind=kind)
        return PredictorInfo(
            name=target.__name__,
            setup=None,
            setup_takes_weights=False,
            setup_is_async=False,
            healthcheck=None,
            predict=handler if kind == "predict" else None,
            train=handler if kind == "train" else None,
        )
    cls = type(target)
    method = _predict_method(cls)
    has_train = _user_method_owner(cls, "train") is not None
    if method is None and kind == "predict":
        msg = f"run or predict method not found: {cls.__name__}"
        raise ValueError(msg)
    if not has_train and kind == "train":
        msg = f"train method not found: {cls.__name__}"
        raise ValueError(msg)
    predict = getattr(target, method) if method else None
    train = target.train if has_train else None
    setup = getattr(target, "setup", None)
    healthcheck = getattr(target, "healthcheck", None)
    return PredictorInfo(
        name=cls.__name__,
        setup=setup if callable(setup) else None,
        setup_takes_weights=callable(setup) and "weights" in inspect.signature(setup).parameters,
        setup_is_async=inspect.iscoroutinefunction(setup),
        healthcheck=healthcheck if callable(healthcheck) else None,
        predict=describe_handler(predict, is_method=True, kind="predict") if predict else None,
        train=describe_handler(train, is_method=True, kind="train") if train else None,
    )


def describe_handler(fn: Callable[..., Any], *, is_method: bool, kind: Kind) -> HandlerInfo:
    """Describe one handler; ``is_method`` means ``fn`` is bound (its ``self`` is skipped).

    Also replaces ``Input()`` defaults in the function's ``__defaults__``/``__kwdefaults__``
    by their ``.default``, as coglet does, so omitted inputs get the Python default. The
    originals are kept on the function, so describing it again gives the same schema.

    Raises:
        ValueError: the signature, a type or an ``Input()`` is not supported, or
            ``@streaming`` is used without an iterator return type.
    """
    func = inspect.unwrap(getattr(fn, "__func__", fn))
    name = f"{fn.__name__}()"
    declared = _declared_defaults(func)
    facts = _SourceFacts.of(func)
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
    coercions: dict[str, str] = {}
    for order, param in enumerate(params):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            stars = "*args" if param.kind is param.VAR_POSITIONAL else "**kwargs"
            msg = f"{name} must not have {stars}"
            raise ValueError(msg)
        if param.name not in hints:
            msg = f"missing type annotation for input: {param.name}"
            raise ValueError(msg)
        prop, enum, is_required = _input_property(
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
        coercion = _coercion(plain_hints[param.name])
        if coercion is not None:
            coercions[param.name] = coercion

    output = {**_output_schema(returns, frozenset()), "title": "Output"}
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


def _declared_defaults(func: types.FunctionType) -> dict[str, Any]:
    """Each parameter's default as written, then ``Input()`` objects patched to their values.

    The first call stashes the written defaults on the function: after patching, the
    ``FieldInfo`` metadata (descriptions, constraints) lives only there.
    """
    stash = func.__dict__.setdefault(
        "__nbcog_declared_defaults__", (func.__defaults__ or (), dict(func.__kwdefaults__ or {}))
    )
    defaults, kwdefaults = stash
    code = func.__code__
    positional = code.co_varnames[: code.co_argcount]
    declared = (
        dict(zip(positional[len(positional) - len(defaults) :], defaults, strict=True)) | kwdefaults
    )
    if defaults:
        func.__defaults__ = tuple(_python_default(value) for value in defaults)
    if kwdefaults:
        func.__kwdefaults__ = {key: _python_default(value) for key, value in kwdefaults.items()}
    return declared


def _python_default(value: Any) -> Any:
    return value.default if isinstance(value, FieldInfo) else value


@dataclass(frozen=True)
class _SourceFacts:
    """What only the handler's source tells: ``@streaming``, and which ``Input()`` set a default."""

    streaming: bool = False
    explicit_default: dict[str, bool] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, func: types.FunctionType) -> _SourceFacts:
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
        except (OSError, TypeError, SyntaxError):
            return cls()
        node = tree.body[0] if tree.body else None
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return cls()
        args = node.args
        positional = args.posonlyargs + args.args
        pairs = [
            *zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True),
            *(
                (arg, default)
                for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True)
                if default
            ),
        ]
        return cls(
            streaming=any(_is_streaming(d, func.__globals__) for d in node.decorator_list),
            explicit_default={arg.arg: _sets_default(default) for arg, default in pairs},
        )


def _sets_default(expr: ast.expr) -> bool:
    """``Input("x")`` and ``Input(default=...)`` set a default; ``Input(description=...)`` not.

    Anything that is not a call (a constant, a name) is taken as a default.
    """
    if not isinstance(expr, ast.Call):
        return True
    return bool(expr.args) or any(kw.arg in ("default", None) for kw in expr.keywords)


def _is_streaming(decorator: ast.expr, namespace: dict[str, Any]) -> bool:
    """``@streaming``, ``@streaming()``, ``@cog.streaming`` or an alias of them.

    The name is looked up in the function's globals and must be ``cog.streaming`` itself; a
    name that cannot be resolved (a local import) is accepted by its spelling.
    """
    if isinstance(decorator, ast.Call):
        if decorator.args or decorator.keywords:
            return False
        decorator = decorator.func
    try:
        return _evaluate(decorator, namespace) is cog.streaming
    except (LookupError, AttributeError):
        return ast.unparse(decorator) in ("streaming", "cog.streaming")


def _evaluate(expr: ast.expr, namespace: dict[str, Any]) -> Any:
    if isinstance(expr, ast.Name):
        return namespace[expr.id] if expr.id in namespace else getattr(builtins, expr.id)
    if isinstance(expr, ast.Attribute):
        return getattr(_evaluate(expr.value, namespace), expr.attr)
    raise LookupError(ast.unparse(expr))


# -- input schema (cog's pkg/schema: ResolveInputType, buildInputSchema) --------------------


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


def _input_property(
    name: str, order: int, annotation: Any, declared: Any, explicit: bool
) -> tuple[dict[str, Any], dict[str, Any] | None, bool]:
    """One ``Input`` property, its enum component (choices) and whether it is required."""
    try:
        resolved = _resolve_input(annotation)
    except ValueError as error:
        msg = f"invalid input field {name}: {error}"
        raise ValueError(msg) from None
    info = declared if isinstance(declared, FieldInfo) else FieldInfo()
    if declared is inspect.Parameter.empty or (isinstance(declared, FieldInfo) and not explicit):
        has_default, default = False, None
    else:
        has_default, default = True, _python_default(declared)
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
        enum_type = _SCALARS.get(resolved.primitive, _ANY)["type"]
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


def _resolve_input(annotation: Any) -> _InputType:
    inner, opaque = _unwrap_opaque(annotation)
    if opaque:
        return _opaque_input(inner)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _resolve_input(args[0])
    if _is_union(annotation):
        nullable = type(None) in args
        members = [_resolve_input(arg) for arg in args if arg is not type(None)]
        if len(members) == 1:
            return dataclasses.replace(members[0], nullable=True)
        for member, arg in zip(members, [a for a in args if a is not type(None)], strict=True):
            if member.nullable or member.union:
                msg = "unsupported type: nested nullable variants are not supported in union inputs"
                raise ValueError(msg)
            if member.primitive in (Path, File, Secret):
                msg = f"unsupported type: {_type_name(arg)} is not supported in union inputs"
                raise ValueError(msg)
        variants = [{**m.schema, "nullable": True} if nullable else m.schema for m in members]
        return _InputType({"anyOf": variants}, nullable=nullable, union=True)
    if annotation is list or origin is list:
        element = _resolve_input(args[0]) if args else _InputType(dict(_ANY))
        if element.nullable or element.union or element.schema.get("type") == "array":
            msg = "unsupported type: nested generics like List[Optional[X]] are not supported"
            raise ValueError(msg)
        return _InputType({"type": "array", "items": element.schema}, primitive=element.primitive)
    if annotation is Any or annotation is dict or origin is dict or typing.is_typeddict(annotation):
        return _InputType(dict(_ANY))
    if annotation in _SCALARS:
        return _InputType(dict(_SCALARS[annotation]), primitive=annotation)
    if inspect.isclass(annotation) and issubclass(annotation, pathlib.PurePath):
        return _InputType(dict(_SCALARS[Path]), primitive=Path)  # cog names it Path: a uri string
    msg = f"unsupported type: {_type_name(annotation)}"
    raise ValueError(msg)


def _opaque_input(inner: Any) -> _InputType:
    """``Annotated[T, cog.Opaque]``: an object, or a list of objects, maybe nullable."""
    if _is_union(inner) and type(None) in typing.get_args(inner):
        members = [arg for arg in typing.get_args(inner) if arg is not type(None)]
        return dataclasses.replace(_opaque_input(members[0]), nullable=True)
    if inner is list or typing.get_origin(inner) is list:
        return _InputType({"type": "array", "items": dict(_ANY)})
    return _InputType(dict(_ANY))


def _coercion(annotation: Any) -> str | None:
    """coglet's ``classify_fields``: Secret, Path or File, directly, in a list or a union."""
    kinds = {File: "file", Path: "path", Secret: "secret"}
    candidates = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    for candidate in [annotation, *candidates] if _is_union(annotation) else [annotation]:
        if candidate in kinds:
            return kinds[candidate]
        element = typing.get_args(candidate)[:1]
        if typing.get_origin(candidate) is list and element and element[0] in (File, Path):
            return kinds[element[0]]
    return None


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


# -- output schema (cog's pkg/schema: ResolveSchemaType, SchemaType.JSONSchema) --------------


def _output_schema(annotation: Any, seen: frozenset[type]) -> dict[str, Any]:
    """The JSON schema of a return type (or a model field's type), without the title."""
    inner, opaque = _unwrap_opaque(annotation)
    if opaque:
        if _is_union(inner) and type(None) in typing.get_args(inner):
            raise ValueError(_OPTIONAL_OUTPUT)
        return _opaque_output(inner)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _output_schema(args[0], seen)
    if annotation is Any:
        return dict(_ANY)
    if _is_model(annotation):
        return _model_schema(annotation, seen)
    if _is_union(annotation):
        if type(None) in args:
            raise ValueError(_OPTIONAL_OUTPUT)
        msg = "unsupported type: union types are not supported as output"
        raise ValueError(msg)
    if annotation is list or origin is list:
        return {"type": "array", "items": _output_schema(args[0], seen) if args else dict(_ANY)}
    if annotation is dict or origin is dict:
        if len(args) == 2:
            return {"type": "object", "additionalProperties": _output_schema(args[1], seen)}
        return dict(_ANY)
    concatenate = annotation in _CONCATENATE or origin in _CONCATENATE
    if concatenate or annotation in _ITERATORS or origin in _ITERATORS:
        if len(args) != 1:
            name = _type_name(origin or annotation)
            msg = f"unsupported type: {name} expects exactly 1 type argument"
            raise ValueError(msg)
        if concatenate and args[0] is not str:
            msg = f"ConcatenateIterator element type must be str, got {_type_name(args[0])}"
            raise ValueError(msg)
        schema = {
            "type": "array",
            "items": _output_schema(args[0], seen),
            "x-cog-array-type": "iterator",
        }
        return {**schema, "x-cog-array-display": "concatenate"} if concatenate else schema
    if annotation in _SCALARS:
        return dict(_SCALARS[annotation])
    if inspect.isclass(annotation) and issubclass(annotation, pathlib.PurePath):
        return dict(_SCALARS[Path])
    msg = f"unsupported type: {_type_name(annotation)} is not a supported output type"
    raise ValueError(msg)


def _field_schema(annotation: Any, seen: frozenset[type]) -> tuple[dict[str, Any], bool]:
    """A model field's schema, and whether it is nullable: there ``Optional[T]`` is allowed."""
    inner, opaque = _unwrap_opaque(annotation)
    origin = typing.get_origin(annotation)
    if not opaque and (origin is typing.Annotated or getattr(origin, "_name", "") in _KEY_MARKS):
        return _field_schema(typing.get_args(annotation)[0], seen)
    if _is_union(inner) and type(None) in typing.get_args(inner):
        rest = _only_member(inner)
        schema = _opaque_output(rest) if opaque else _output_schema(rest, seen)
        return {**schema, "nullable": True}, True
    return _output_schema(annotation, seen), False


def _opaque_output(inner: Any) -> dict[str, Any]:
    is_list = inner is list or typing.get_origin(inner) is list
    return {"type": "array", "items": dict(_ANY)} if is_list else dict(_ANY)


def _only_member(optional: Any) -> Any:
    """``T`` of ``Optional[T]``; an optional union of several types is not supported."""
    members = [arg for arg in typing.get_args(optional) if arg is not type(None)]
    if len(members) != 1:
        msg = "unsupported type: union types are not supported as output"
        raise ValueError(msg)
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


def _model_schema(model: type, seen: frozenset[type]) -> dict[str, Any]:
    """Properties in field order, each titled; required unless Optional or defaulted.

    A model that contains itself is an opaque object at the second level, as in cog.
    """
    if model in seen:
        return dict(_ANY)
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


# -- typing helpers ------------------------------------------------------------------------


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _unwrap_opaque(annotation: Any) -> tuple[Any, bool]:
    """``(T, True)`` for ``Annotated[T, cog.Opaque, ...]``, else ``(annotation, False)``."""
    if typing.get_origin(annotation) is typing.Annotated:
        inner, *metadata = typing.get_args(annotation)
        if any(item is cog.Opaque for item in metadata):
            return inner, True
    return annotation, False


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation)
