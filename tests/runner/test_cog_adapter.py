"""Loading predictors and describing handlers: schema rows of spec §5, coercions of §7, §1."""

# Input() calls as parameter defaults are how cog declares inputs (B008), and Optional[X] is
# tested next to X | None because both spellings are cog forms (UP045).
# ruff: noqa: B008, UP045

from __future__ import annotations

import io
import linecache
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, Optional, TypedDict

import cog
import pydantic
import pytest
from cog import (
    AsyncConcatenateIterator,
    BaseModel,
    BasePredictor,
    BaseRunner,
    ConcatenateIterator,
    File,
    Input,
    Opaque,
    Path,
    Secret,
    concurrent,
)
from typing_extensions import NotRequired

from nbcog.runner.cog_adapter import (
    STREAMING_RETURN_ERROR,
    HandlerInfo,
    describe_handler,
    describe_predictor,
    load_target,
)


def describe(target: object, kind: str = "predict") -> HandlerInfo:
    info = describe_predictor(load_target(target), kind=kind)  # type: ignore[arg-type]
    handler = info.predict if kind == "predict" else info.train
    assert handler is not None
    return handler


def raised(error: type[Exception], call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(error) as info:
        call(*args, **kwargs)
    return str(info.value)


# -- input schema (spec §5 "Input") -----------------------------------------------------------


class Cfg(TypedDict):
    a: int


class Everything(BaseRunner):
    def run(
        self,
        text: str,
        fail_at: int = Input(default=5, ge=1, le=10),
        ratio: float = Input(default=1.0, ge=0.5),
        flag: bool = False,
        image: Path = Input(description="An image", accept="image/*"),
        doc: Optional[File] = None,
        api_key: Secret = Input(description="required key"),
        proxy_key: Secret = Input(default=None),
        tags: list[str] = Input(description="tags"),
        config: dict = Input(default={"k": 1.5}),
        cfg: Cfg = Input(default={"a": 1}),
        blob: Annotated[dict, Opaque] = Input(description="opaque"),
        maybe: Optional[str] = None,
        described: Optional[str] = Input(description="d"),
        bare: int | None = Input(ge=0),
        seed: int = Input(default=None),
        value: str | float | None = Input(default=None),
        nums: list[int] | list[float] = Input(description="n"),
        color: str = Input(default="red", choices=["red", "green"], description="c"),
        size: int = Input(choices=[1, 2]),
        name: str = Input(default="ab", min_length=2, max_length=5, regex="^[a-z]+$"),
        old: str = Input(default="x", deprecated=True),
        paths: list[Path] = Input(default=[]),
        positional: str = Input("pos"),
    ) -> str:
        return f"{fail_at} {ratio} {proxy_key} {described} {positional}"


EVERYTHING = describe(Everything)
URI = {"type": "string", "format": "uri"}
PASSWORD = {"type": "string", "format": "password", "writeOnly": True, "x-cog-secret": True}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("text", {"x-order": 0, "title": "Text", "type": "string"}),
        (
            "fail_at",
            {
                "x-order": 1,
                "title": "Fail At",
                "type": "integer",
                "default": 5,
                "minimum": 1,
                "maximum": 10,
            },
        ),
        ("ratio", {"x-order": 2, "title": "Ratio", "type": "number", "default": 1, "minimum": 0.5}),
        ("flag", {"x-order": 3, "title": "Flag", "type": "boolean", "default": False}),
        (
            "image",
            {
                "x-order": 4,
                "title": "Image",
                **URI,
                "description": "An image",
                "x-cog-accept": "image/*",
            },
        ),
        ("doc", {"x-order": 5, "title": "Doc", **URI, "default": None, "nullable": True}),
        ("api_key", {"x-order": 6, "title": "Api Key", **PASSWORD, "description": "required key"}),
        (
            "proxy_key",
            {"x-order": 7, "title": "Proxy Key", **PASSWORD, "default": None, "nullable": True},
        ),
        (
            "tags",
            {
                "x-order": 8,
                "title": "Tags",
                "type": "array",
                "items": {"type": "string"},
                "description": "tags",
            },
        ),
        ("config", {"x-order": 9, "title": "Config", "type": "object", "default": {"k": 1.5}}),
        ("cfg", {"x-order": 10, "title": "Cfg", "type": "object", "default": {"a": 1}}),
        ("blob", {"x-order": 11, "title": "Blob", "type": "object", "description": "opaque"}),
        (
            "maybe",
            {"x-order": 12, "title": "Maybe", "type": "string", "default": None, "nullable": True},
        ),
        (
            "described",
            {
                "x-order": 13,
                "title": "Described",
                "type": "string",
                "nullable": True,
                "description": "d",
            },
        ),
        (
            "bare",
            {"x-order": 14, "title": "Bare", "type": "integer", "nullable": True, "minimum": 0},
        ),
        ("seed", {"x-order": 15, "title": "Seed", "type": "integer"}),
        (
            "value",
            {
                "x-order": 16,
                "title": "Value",
                "anyOf": [
                    {"type": "string", "nullable": True},
                    {"type": "number", "nullable": True},
                ],
                "default": None,
                "nullable": True,
            },
        ),
        (
            "nums",
            {
                "x-order": 17,
                "title": "Nums",
                "anyOf": [
                    {"type": "array", "items": {"type": "integer"}},
                    {"type": "array", "items": {"type": "number"}},
                ],
                "description": "n",
            },
        ),
        (
            "color",
            {
                "x-order": 18,
                "allOf": [{"$ref": "#/components/schemas/color"}],
                "default": "red",
                "description": "c",
            },
        ),
        ("size", {"x-order": 19, "allOf": [{"$ref": "#/components/schemas/size"}]}),
        (
            "name",
            {
                "x-order": 20,
                "title": "Name",
                "type": "string",
                "default": "ab",
                "minLength": 2,
                "maxLength": 5,
                "pattern": "^[a-z]+$",
            },
        ),
        (
            "old",
            {"x-order": 21, "title": "Old", "type": "string", "default": "x", "deprecated": True},
        ),
        ("paths", {"x-order": 22, "title": "Paths", "type": "array", "items": URI, "default": []}),
        ("positional", {"x-order": 23, "title": "Positional", "type": "string", "default": "pos"}),
    ],
)
def test_each_parameter_becomes_cogs_property(name: str, expected: dict[str, Any]) -> None:
    """Every §5 input rule yields exactly the property cog's Go generator writes."""
    assert EVERYTHING.schema.input["properties"][name] == expected


def test_required_lists_fields_without_an_effective_default_in_order() -> None:
    """Required: no effective default and not Optional; lists and unions included."""
    assert EVERYTHING.schema.input["title"] == "Input"
    assert EVERYTHING.schema.input["required"] == [
        "text",
        "image",
        "api_key",
        "tags",
        "blob",
        "seed",
        "nums",
        "size",
    ]


def test_choices_become_enum_components_named_after_the_parameter() -> None:
    """A choices input gets an enum component of the parameter's JSON type."""
    assert EVERYTHING.schema.enums == {
        "color": {
            "title": "color",
            "description": "An enumeration.",
            "enum": ["red", "green"],
            "type": "string",
        },
        "size": {
            "title": "size",
            "description": "An enumeration.",
            "enum": [1, 2],
            "type": "integer",
        },
    }


def test_required_is_omitted_when_empty() -> None:
    """An Input with no required field has no required key."""

    def run(x: int = 1) -> int:
        return x

    assert describe(run).schema.input == {
        "title": "Input",
        "type": "object",
        "properties": {"x": {"x-order": 0, "title": "X", "type": "integer", "default": 1}},
    }


def test_input_defaults_are_patched_to_their_values() -> None:
    """Input() defaults are replaced by .default, so an omitted input gets the Python default."""
    assert EVERYTHING.fn(
        text="t", image="i", api_key="k", tags=[], blob={}, seed=1, nums=[], size=1
    ) == ("5 1.0 None None pos")


def test_describing_twice_gives_the_same_schema() -> None:
    """The Input() metadata survives the patching, so a second describe sees it again."""
    assert describe(Everything).schema == EVERYTHING.schema


def test_keyword_only_inputs_are_described_and_patched() -> None:
    """Parameters after * are inputs too, and their Input() defaults are patched."""

    def run(a: str, *, k: int = Input(default=2, description="k")) -> str:
        return f"{a}{k}"

    handler = describe(run)
    assert handler.schema.input["properties"]["k"] == {
        "x-order": 1,
        "title": "K",
        "type": "integer",
        "default": 2,
        "description": "k",
    }
    assert handler.fn(a="a") == "a2"


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        (set[int], "invalid input field x: unsupported type: set"),
        (
            list[Optional[int]],
            "invalid input field x: unsupported type: nested generics like List[Optional[X]] "
            "are not supported",
        ),
        (
            Path | str,
            "invalid input field x: unsupported type: Path is not supported in union inputs",
        ),
        (
            list[Secret] | int,
            "invalid input field x: unsupported type: list is not supported in union inputs",
        ),
    ],
)
def test_unsupported_input_types_fail_clearly(annotation: Any, message: str) -> None:
    """An input type cog cannot express is rejected with the field and the reason."""

    def run(x: int) -> str:
        return ""

    run.__annotations__["x"] = annotation
    assert raised(ValueError, describe, run) == message


def test_accept_is_only_for_files() -> None:
    """accept= on a non-Path/File input is rejected, as cog build rejects it."""

    def run(x: str = Input(accept="image/*")) -> str:
        return x

    assert raised(ValueError, describe, run) == (
        "accept is only valid on Path or File inputs (parameter 'x')"
    )


def test_constraints_on_unions_are_rejected() -> None:
    """ge/le/lengths/regex/choices cannot constrain a union input."""

    def run(x: str | int = Input(ge=1)) -> str:
        return ""

    assert raised(ValueError, describe, run) == (
        "invalid input field x: constraints and choices are not supported on unions"
    )


def test_signature_problems_use_cogs_messages() -> None:
    """Missing annotations, *args, **kwargs and a missing return type are rejected."""

    def no_type(x) -> str:  # type: ignore[no-untyped-def]
        return ""

    def star(*x: int) -> str:
        return ""

    def stars(**x: int) -> str:
        return ""

    def no_return(x: int):  # type: ignore[no-untyped-def]
        return ""

    def returns_none(x: int) -> None:
        return None

    assert raised(ValueError, describe, no_type) == "missing type annotation for input: x"
    assert raised(ValueError, describe, star) == "star() must not have *args"
    assert raised(ValueError, describe, stars) == "stars() must not have **kwargs"
    assert (
        raised(ValueError, describe, no_return) == "no_return() must have a return type annotation"
    )
    assert (
        raised(ValueError, describe, returns_none)
        == "returns_none() must have a return type annotation"
    )


# -- output schema (spec §5 "Output") ----------------------------------------------------------


class Inner(BaseModel):
    label: str


class Result(BaseModel):
    text: str
    score: Optional[float]
    inner: Inner
    items: list[Inner]
    meta: dict[str, int]
    raw: Annotated[Optional[dict], Opaque]
    count: int = 3


class PydanticResult(pydantic.BaseModel):
    name: str
    tags: list[str] = []
    note: Optional[str] = None


class TypedResult(TypedDict, total=False):
    a: int
    b: NotRequired[Optional[str]]


class TotalTypedResult(TypedDict):
    a: int
    b: NotRequired[str]
    c: Optional[str]


def returning(annotation: Any) -> Any:
    def run() -> str:
        return ""

    run.__annotations__["return"] = annotation
    return run


ITERATOR = {"type": "array", "x-cog-array-type": "iterator"}


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (str, {"type": "string"}),
        (int, {"type": "integer"}),
        (float, {"type": "number"}),
        (bool, {"type": "boolean"}),
        (Path, URI),
        (File, URI),
        (Any, {"type": "object"}),
        (dict, {"type": "object"}),
        (list, {"type": "array", "items": {"type": "object"}}),
        (list[Path], {"type": "array", "items": URI}),
        (dict[str, int], {"type": "object", "additionalProperties": {"type": "integer"}}),
        (
            dict[str, list[int]],
            {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "integer"}},
            },
        ),
        (Annotated[list, Opaque], {"type": "array", "items": {"type": "object"}}),
        (Iterator[str], {**ITERATOR, "items": {"type": "string"}}),
        (AsyncIterator[Path], {**ITERATOR, "items": URI}),
        (
            ConcatenateIterator[str],
            {**ITERATOR, "items": {"type": "string"}, "x-cog-array-display": "concatenate"},
        ),
        (
            AsyncConcatenateIterator[str],
            {**ITERATOR, "items": {"type": "string"}, "x-cog-array-display": "concatenate"},
        ),
        (
            Result,
            {
                "type": "object",
                "properties": {
                    "text": {"type": "string", "title": "Text"},
                    "score": {"type": "number", "nullable": True, "title": "Score"},
                    "inner": {
                        "type": "object",
                        "properties": {"label": {"type": "string", "title": "Label"}},
                        "required": ["label"],
                        "title": "Inner",
                    },
                    "items": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"label": {"type": "string", "title": "Label"}},
                            "required": ["label"],
                        },
                        "title": "Items",
                    },
                    "meta": {
                        "type": "object",
                        "additionalProperties": {"type": "integer"},
                        "title": "Meta",
                    },
                    "raw": {"type": "object", "nullable": True, "title": "Raw"},
                    "count": {"type": "integer", "title": "Count"},
                },
                "required": ["text", "inner", "items", "meta"],
            },
        ),
        (
            PydanticResult,
            {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "title": "Name"},
                    "tags": {"type": "array", "items": {"type": "string"}, "title": "Tags"},
                    "note": {"type": "string", "nullable": True, "title": "Note"},
                },
                "required": ["name"],
            },
        ),
        (
            TypedResult,
            {
                "type": "object",
                "properties": {
                    "a": {"type": "integer", "title": "A"},
                    "b": {"type": "string", "nullable": True, "title": "B"},
                },
            },
        ),
        (
            TotalTypedResult,
            {
                "type": "object",
                "properties": {
                    "a": {"type": "integer", "title": "A"},
                    "b": {"type": "string", "title": "B"},
                    "c": {"type": "string", "nullable": True, "title": "C"},
                },
                "required": ["a", "c"],
            },
        ),
    ],
)
def test_return_types_become_cogs_output_schema(annotation: Any, expected: dict[str, Any]) -> None:
    """Every §5 output rule yields exactly the Output component cog writes."""
    handler = describe(returning(annotation))
    assert handler.schema.output == {**expected, "title": "Output"}
    assert handler.output_is_array is (expected["type"] == "array")


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        (Optional[str], "unsupported output type: Optional is not allowed as a return type"),
        (str | int, "unsupported type: union types are not supported as output"),
        (ConcatenateIterator[int], "ConcatenateIterator element type must be str, got int"),
        (set[int], "unsupported type: set is not a supported output type"),
        (Iterator, "unsupported type: Iterator expects exactly 1 type argument"),
    ],
)
def test_unsupported_return_types_fail_clearly(annotation: Any, message: str) -> None:
    """An output type cog cannot express is rejected with cog's reason."""
    assert raised(ValueError, describe, returning(annotation)) == message


def test_train_handler_uses_training_input_title() -> None:
    """A train handler's input component is titled TrainingInput (its output keeps Output)."""

    def train(steps: int) -> str:
        return ""

    schema = describe(train, kind="train").schema
    assert schema.input["title"] == "TrainingInput"
    assert schema.output == {"title": "Output", "type": "string"}


# -- @streaming (spec §1) ----------------------------------------------------------------------

STREAMING_SOURCE = """\
{imports}
from typing import Iterator
from cog import BaseRunner


class Runner(BaseRunner):
    {decorator}
    def run(self, prompt: str) -> {returns}:
        yield prompt
"""


def load_runner(
    tmp_path: Any, name: str, imports: str, decorator: str, returns: str = "Iterator[str]"
) -> Any:
    path = tmp_path / f"{name}.py"
    path.write_text(STREAMING_SOURCE.format(imports=imports, decorator=decorator, returns=returns))
    return load_target(f"{path}:Runner")


@pytest.mark.parametrize(
    ("imports", "decorator"),
    [
        ("from cog import streaming", "@streaming"),
        ("from cog import streaming", "@streaming()"),
        ("import cog", "@cog.streaming"),
        ("import cog", "@cog.streaming()"),
        ("from cog import streaming as s", "@s"),
        ("import cog as c", "@c.streaming()"),
    ],
)
def test_streaming_decorator_forms_are_detected(
    tmp_path: Any, imports: str, decorator: str
) -> None:
    """@streaming is found from source in every spelling, aliases resolved through globals."""
    handler = describe_predictor(load_runner(tmp_path, "stream_form", imports, decorator)).predict
    assert handler is not None
    assert handler.streaming is True
    assert handler.schema.streaming is True


@pytest.mark.parametrize(
    ("imports", "decorator"),
    [
        ("", ""),
        ("def streaming(fn):\n    return fn", "@streaming"),
        ("import functools", "@functools.lru_cache()"),
    ],
)
def test_other_decorators_are_not_streaming(tmp_path: Any, imports: str, decorator: str) -> None:
    """No decorator, a look-alike function or a different decorator does not opt in."""
    handler = describe_predictor(load_runner(tmp_path, "not_streaming", imports, decorator)).predict
    assert handler is not None
    assert handler.streaming is False


def test_streaming_requires_an_iterator_return_type(tmp_path: Any) -> None:
    """@streaming on a handler returning a plain value fails loading with coglet's message."""
    runner = load_runner(tmp_path, "stream_str", "from cog import streaming", "@streaming", "str")
    assert raised(ValueError, describe_predictor, runner) == STREAMING_RETURN_ERROR
    assert STREAMING_RETURN_ERROR == (
        "@streaming requires Iterator[...], AsyncIterator[...], ConcatenateIterator[...] "
        "or AsyncConcatenateIterator[...] return type"
    )


CELL = """\
from typing import Iterator, Optional
from cog import BaseRunner, Input, streaming


class Cell(BaseRunner):
    @streaming
    def run(self, note: Optional[str] = Input(description="d")) -> Iterator[str]:
        yield str(note)
"""


def run_cell(filename: str | None, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Execute CELL in a fresh __main__-like namespace, as IPython runs a notebook cell."""
    name = filename or "<string>"
    if filename is not None:
        lines = CELL.splitlines(keepends=True)
        monkeypatch.setitem(linecache.cache, filename, (len(CELL), None, lines, filename))
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(CELL, name, "exec"), namespace)
    return namespace["Cell"]


def test_class_from_a_notebook_cell_is_described_from_linecache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A class exec'd from a cell registered in linecache is read from source like a file."""
    handler = describe(run_cell("<ipython-input-7-0123456789ab>", monkeypatch))
    assert handler.streaming is True
    assert handler.schema.input["properties"]["note"] == {
        "x-order": 0,
        "title": "Note",
        "type": "string",
        "nullable": True,
        "description": "d",
    }
    assert list(handler.fn()) == ["None"]


def test_without_source_a_handler_is_not_streaming(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no source, streaming is False and every Input() counts as setting its default."""
    handler = describe(run_cell(None, monkeypatch))
    assert handler.streaming is False
    assert handler.schema.input["properties"]["note"]["default"] is None


# -- loading (spec §1) -------------------------------------------------------------------------


class Both(BaseRunner):
    def run(self) -> str:
        return ""

    def predict(self) -> str:
        return ""


class Neither(BaseRunner):
    def setup(self) -> None:
        pass


class Legacy(BasePredictor):
    def predict(self, x: int) -> int:
        return x


def test_classes_must_define_exactly_one_of_run_and_predict() -> None:
    """Both run() and predict(), or neither, is a load error with cog's message."""
    assert (
        raised(ValueError, load_target, Both)
        == "Both must define either run() or predict(), not both"
    )
    assert raised(ValueError, load_target, Neither) == "run or predict method not found: Neither"
    assert raised(ValueError, load_target, Neither()) == "run or predict method not found: Neither"


def test_a_class_is_instantiated_and_an_instance_or_function_kept() -> None:
    """load_target instantiates classes; instances and functions come back unchanged."""

    def run(x: int) -> int:
        return x

    instance = Legacy()
    assert isinstance(load_target(Legacy), Legacy)
    assert load_target(instance) is instance
    assert load_target(run) is run


def test_deprecated_predict_method_is_the_predict_handler() -> None:
    """A BasePredictor with predict() is described through predict()."""
    handler = describe(Legacy)
    assert handler.fn.__name__ == "predict"
    assert handler.fn(x=3) == 3


REF_SOURCE = """\
from cog import BaseRunner


class {name}(BaseRunner):
    def run(self) -> str:
        return "{name}"
"""


@pytest.mark.parametrize(
    ("classes", "ref_name", "chosen"),
    [
        (["Runner", "Predictor"], "", "Runner"),
        (["Predictor"], "", "Predictor"),
        (["Runner", "Custom"], ":Custom", "Custom"),
    ],
)
def test_file_refs_pick_the_named_class_else_runner_else_predictor(
    tmp_path: Any, classes: list[str], ref_name: str, chosen: str
) -> None:
    """path.py:Name loads Name; without a name Runner wins over Predictor."""
    path = tmp_path / f"ref_{chosen.lower()}.py"
    path.write_text("\n".join(REF_SOURCE.format(name=name) for name in classes))
    target = load_target(f"{path}{ref_name}")
    assert type(target).__name__ == chosen
    assert target.run() == chosen


def test_module_refs_are_imported(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """package.module:Name imports the module by name."""
    package = tmp_path / "nbcog_test_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "model.py").write_text(REF_SOURCE.format(name="Mine"))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_target("nbcog_test_pkg.model:Mine").run() == "Mine"


def test_a_module_without_runner_or_predictor_is_an_error(tmp_path: Any) -> None:
    """A file ref without a name needs a Runner or a Predictor."""
    path = tmp_path / "empty_module.py"
    path.write_text("x = 1\n")
    assert (
        raised(AttributeError, load_target, str(path))
        == "module 'empty_module' has no Runner or Predictor"
    )


# -- describing predictors ---------------------------------------------------------------------


class Full(BaseRunner):
    async def setup(self, weights: Optional[str] = None) -> None:
        pass

    def healthcheck(self) -> bool:
        return True

    def run(self, x: int) -> int:
        return x

    def train(self, steps: int = 1) -> str:
        return "trained"


class TrainOnly:
    def train(self, steps: int) -> str:
        return str(steps)


def test_describe_predictor_reports_hooks_and_both_handlers() -> None:
    """setup (async, with weights), healthcheck, run() and train() are all described."""
    info = describe_predictor(load_target(Full))
    assert (info.name, info.setup_takes_weights, info.setup_is_async) == ("Full", True, True)
    assert info.healthcheck is not None and info.healthcheck() is True
    assert info.predict is not None and info.predict.kind == "predict"
    assert info.train is not None and info.train.kind == "train"
    assert info.train.schema.input["title"] == "TrainingInput"


def test_plain_setup_from_base_runner_takes_weights() -> None:
    """BaseRunner's inherited setup(weights=None) is a sync setup that takes weights."""
    info = describe_predictor(load_target(Legacy))
    assert (info.setup_takes_weights, info.setup_is_async, info.healthcheck) == (True, False, None)
    assert info.train is None


def test_functions_are_described_as_the_requested_kind() -> None:
    """A plain function is the predict handler, or the train handler with kind='train'."""

    def train(steps: int) -> str:
        return str(steps)

    info = describe_predictor(train, kind="train")
    assert (info.name, info.setup, info.predict) == ("train", None, None)
    assert info.train is not None and info.train.fn is train


def test_a_training_only_class_loads_for_train_only() -> None:
    """A class with only train() loads, serves kind='train' and is refused for predict."""
    target = load_target(TrainOnly)
    assert describe(target, kind="train").fn(steps=2) == "2"
    assert (
        raised(ValueError, describe_predictor, target)
        == "run or predict method not found: TrainOnly"
    )
    assert (
        raised(ValueError, describe_predictor, Legacy(), kind="train")
        == "train method not found: Legacy"
    )


def test_call_style_flags_and_concurrency() -> None:
    """Async, async-generator and generator handlers are told apart; @concurrent sets slots."""

    @concurrent(max=4)
    async def coroutine(x: int) -> int:
        return x

    async def async_gen(x: int) -> AsyncIterator[int]:
        yield x

    def gen(x: int) -> Iterator[int]:
        yield x

    flags = [
        (h.is_async, h.is_async_gen, h.is_generator, h.concurrency)
        for h in map(describe, (coroutine, async_gen, gen, returning(str)))
    ]
    assert flags == [
        (True, False, False, 4),
        (False, True, False, 1),
        (False, False, True, 1),
        (False, False, False, 1),
    ]


def test_describe_handler_skips_self_of_a_bound_method() -> None:
    """describe_handler on a bound method leaves self out of the inputs."""
    handler = describe_handler(Legacy().predict, is_method=True, kind="predict")
    assert list(handler.schema.input["properties"]) == ["x"]


# -- coercion (spec §7) ------------------------------------------------------------------------


class Typed(BaseRunner):
    def run(
        self,
        key: Secret,
        maybe_key: Optional[Secret] = None,
        keys: list[Secret] = Input(default=[]),
        image: Path | None = None,
        images: list[Path] = Input(default=[]),
        upload: File = Input(default=None),
        uploads: Optional[list[File]] = None,
        url: str = "",
    ) -> str:
        return ""


TYPED = describe(Typed)


def fake_download(url: str) -> str:
    return f"/tmp/{url.rsplit('/', 1)[-1]}"


def test_secrets_are_wrapped_but_not_inside_lists() -> None:
    """Secret and Optional[Secret] strings become cog.Secret; list[Secret] stays plain."""
    kwargs = TYPED.coerce({"key": "k1", "maybe_key": "k2", "keys": ["k3"]}, fake_download)
    assert kwargs["key"] == Secret("k1") and str(kwargs["key"]) == "**********"
    assert kwargs["maybe_key"] == Secret("k2")
    assert kwargs["keys"] == ["k3"]


def test_path_urls_are_downloaded_and_other_strings_kept() -> None:
    """http(s)/data URLs for Path inputs become cog.Path downloads; other strings stay str."""
    values = {
        "key": "k",
        "image": "https://example.com/a.png",
        "images": ["http://example.com/b.txt", "local.txt", "data:text/plain,c"],
        "url": "https://example.com/keep",
    }
    kwargs = TYPED.coerce(values, fake_download)
    assert kwargs["image"] == Path("/tmp/a.png") and type(kwargs["image"]) is Path
    assert kwargs["images"] == [Path("/tmp/b.txt"), "local.txt", Path("/tmp/plain,c")]
    assert type(kwargs["images"][1]) is str
    assert kwargs["url"] == "https://example.com/keep"
    assert values["images"][0] == "http://example.com/b.txt"


def test_non_url_path_strings_and_nulls_are_untouched() -> None:
    """A Path input given a plain string stays a str; None stays None."""
    kwargs = TYPED.coerce({"key": "k", "image": "not-a-url", "upload": None}, fake_download)
    assert kwargs == {"key": Secret("k"), "image": "not-a-url", "upload": None}
    assert type(kwargs["image"]) is str


def test_file_inputs_become_file_objects() -> None:
    """File http(s) URLs become lazy cog.URLFile, data URIs io.BytesIO, other strings stay."""
    kwargs = TYPED.coerce(
        {"key": "k", "upload": "https://example.com/f.bin", "uploads": ["data:,hi", "plain"]},
        fake_download,
    )
    assert isinstance(kwargs["upload"], cog.URLFile)
    assert isinstance(kwargs["uploads"][0], io.BytesIO) and kwargs["uploads"][0].read() == b"hi"
    assert kwargs["uploads"][1] == "plain"


def test_downloads_run_eight_at_a_time() -> None:
    """Many Path URLs download in parallel on at most 8 threads."""
    lock = threading.Lock()
    running, peak = [0], [0]

    def slow_download(url: str) -> str:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return fake_download(url)

    urls = [f"https://example.com/{n}.png" for n in range(12)]
    kwargs = TYPED.coerce({"key": "k", "images": urls}, slow_download)
    assert kwargs["images"] == [Path(f"/tmp/{n}.png") for n in range(12)]
    assert peak[0] == 8


def test_download_errors_propagate() -> None:
    """A failing download raises its own exception out of coerce."""

    def failing(url: str) -> str:
        raise OSError(f"cannot fetch {url}")

    assert raised(OSError, TYPED.coerce, {"key": "k", "image": "https://x/y"}, failing) == (
        "cannot fetch https://x/y"
    )


def test_loaded_file_handlers_see_module_globals(tmp_path: Any) -> None:
    """A handler in a file using postponed annotations resolves its types from its module."""
    path = tmp_path / "postponed.py"
    path.write_text(
        textwrap.dedent(
            """\
            from __future__ import annotations
            from cog import BaseRunner, Path

            class Runner(BaseRunner):
                def run(self, image: Path) -> list[Path]:
                    return [image]
            """
        )
    )
    handler = describe(str(path))
    assert handler.schema.input["properties"]["image"]["format"] == "uri"
    assert handler.coercions == {"image": "path"}
