"""Input validation: coglet's 422 messages, order and null injection (spec §7).

Expected messages were checked byte for byte against a live coglet 0.23.1.
"""

from __future__ import annotations

from typing import Any

import pytest

from nbcog.core.validation import inline_refs, serde_display, validate_input

COLOR = {
    "title": "color",
    "description": "An enumeration.",
    "enum": ["red", "green"],
    "type": "string",
}
SCHEMA: dict[str, Any] = {
    "title": "Input",
    "type": "object",
    "properties": {
        "n": {"title": "N", "type": "integer", "minimum": 0, "maximum": 10, "x-order": 0},
        "s": {
            "title": "S",
            "type": "string",
            "minLength": 2,
            "maxLength": 5,
            "pattern": "^[a-z]+$",
            "default": "ab",
            "x-order": 1,
        },
        "x": {"title": "X", "type": "number", "default": 0.5, "x-order": 2},
        "color": {"allOf": [COLOR], "default": "red", "x-order": 3},
        "nums": {"title": "Nums", "type": "array", "items": {"type": "integer"}, "x-order": 4},
        "obj": {"title": "Obj", "type": "object", "default": {}, "x-order": 5},
        "u": {
            "title": "U",
            "anyOf": [{"type": "string", "nullable": True}, {"type": "integer", "nullable": True}],
            "nullable": True,
            "default": None,
            "x-order": 6,
        },
        "opt": {"title": "Opt", "type": "string", "nullable": True, "x-order": 7},
        "one": {"title": "One", "type": "string", "maxLength": 1, "default": "a", "x-order": 8},
        "code": {"title": "Code", "type": "string", "pattern": r"\d", "default": "1", "x-order": 9},
    },
    "required": ["n", "nums"],
}


def error(field: str, msg: str) -> dict[str, Any]:
    return {"loc": ["body", "input", field], "msg": msg, "type": "value_error"}


def missing(field: str) -> dict[str, Any]:
    return {"loc": ["body", "input", field], "msg": "Field required", "type": "value_error.missing"}


def errors_for(payload: object) -> list[dict[str, Any]]:
    return validate_input(SCHEMA, payload)[1]


def valid(**fields: Any) -> dict[str, Any]:
    return {"n": 1, "nums": [], **fields}


@pytest.mark.parametrize(
    ("payload", "field", "msg"),
    [
        (valid(n="3"), "n", '"3" is not of type "integer"'),
        (valid(n=None), "n", 'null is not of type "integer"'),
        (valid(n=True), "n", 'true is not of type "integer"'),
        (valid(n=3.5), "n", '3.5 is not of type "integer"'),
        (valid(opt=None), "opt", 'null is not of type "string"'),
        (valid(obj=["x"]), "obj", '["x"] is not of type "object"'),
        (valid(x="1"), "x", '"1" is not of type "number"'),
        (valid(x=False), "x", 'false is not of type "number"'),
        (valid(n=11), "n", "11 is greater than the maximum of 10"),
        (valid(n=-1), "n", "-1 is less than the minimum of 0"),
        (valid(n=1e20), "n", "1e+20 is greater than the maximum of 10"),
        (valid(s="toolongx"), "s", '"toolongx" is longer than 5 characters'),
        (valid(s="a"), "s", '"a" is shorter than 2 characters'),
        (valid(one="ab"), "one", '"ab" is longer than 1 character'),
        (valid(s="ab1"), "s", '"ab1" does not match "^[a-z]+$"'),
        (valid(code="٣"), "code", '"٣" does not match "\\d"'),
        (valid(color="blue"), "color", '"blue" is not one of ["red","green"]'),
        (
            valid(u=True),
            "u",
            "true is not valid under any of the schemas listed in the 'anyOf' keyword",
        ),
        (
            valid(u=None),
            "u",
            "null is not valid under any of the schemas listed in the 'anyOf' keyword",
        ),
        (valid(nums=[1, "x"]), "nums/1", '"x" is not of type "integer"'),
    ],
)
def test_each_keyword_reports_coglets_message(
    payload: dict[str, Any], field: str, msg: str
) -> None:
    """A value breaking one keyword gets exactly coglet's message, located at its field."""
    assert errors_for(payload) == [error(field, msg)]


def test_valid_input_passes_json_values_through_without_coercion() -> None:
    """3.0 passes as an integer and stays a float; 1 passes as a number and stays an int."""
    values, errors = validate_input(SCHEMA, valid(n=3.0, x=1, s="abc"))
    assert errors == []
    assert values == {"n": 3.0, "nums": [], "x": 1, "s": "abc", "opt": None}
    assert type(values["n"]) is float and type(values["x"]) is int


def test_unknown_keys_are_dropped_silently() -> None:
    """Keys the schema does not know are neither validated nor returned."""
    assert validate_input(SCHEMA, valid(zz="anything", n=2)) == (
        {"n": 2, "nums": [], "opt": None},
        [],
    )


def test_omitted_nullable_without_default_is_injected_as_none() -> None:
    """Only nullable, non-required fields without a default are filled, and only with None."""
    values, _ = validate_input(SCHEMA, {})
    assert values == {"opt": None}


def test_defaults_are_never_filled() -> None:
    """Schema defaults stay out of the values; the Python default applies later."""
    values, _ = validate_input(SCHEMA, valid())
    assert "s" not in values and "u" not in values


def test_errors_are_sorted_by_field_then_missing_fields_in_required_order() -> None:
    """Property errors come sorted by name, then one missing entry per required field."""
    assert errors_for({"x": "q", "color": "z", "s": 5, "zz": 3}) == [
        error("color", '"z" is not one of ["red","green"]'),
        error("s", '5 is not of type "string"'),
        error("x", '"q" is not of type "number"'),
        missing("n"),
        missing("nums"),
    ]


def test_one_value_breaking_several_keywords_lists_them_in_keyword_order() -> None:
    """One value's errors follow keyword order: enum before type, maxLength before pattern."""
    assert errors_for(valid(color=5, s="TOOLONGX")) == [
        error("color", '5 is not one of ["red","green"]'),
        error("color", '5 is not of type "string"'),
        error("s", '"TOOLONGX" is longer than 5 characters'),
        error("s", '"TOOLONGX" does not match "^[a-z]+$"'),
    ]


def test_every_bad_list_element_is_reported_with_its_index() -> None:
    """Each failing array item is its own error, located as field/index."""
    assert errors_for(valid(nums=[1, "x", None])) == [
        error("nums/1", '"x" is not of type "integer"'),
        error("nums/2", 'null is not of type "integer"'),
    ]


@pytest.mark.parametrize(("payload", "shown"), [([1, 2], "[1,2]"), ("x", '"x"'), (5, "5")])
def test_non_object_input_is_a_root_error(payload: object, shown: str) -> None:
    """An input that is not an object fails only the object type check, at __root__."""
    assert validate_input(SCHEMA, payload) == (
        {},
        [error("__root__", f'{shown} is not of type "object"')],
    )


def test_lengths_count_code_points() -> None:
    """An accented letter is one character, not two bytes."""
    assert errors_for(valid(one="é")) == []


def test_pattern_is_an_unanchored_search() -> None:
    """A pattern matches anywhere in the string unless it anchors itself."""
    assert errors_for(valid(code="abc1def")) == []


def test_enum_compares_numbers_by_value_but_not_booleans() -> None:
    """1.0 is one of [1, 2]; true is not."""
    schema = {"type": "object", "properties": {"k": {"enum": [1, 2], "type": "integer"}}}
    assert validate_input(schema, {"k": 1.0})[1] == []
    assert validate_input(schema, {"k": True})[1] == [
        error("k", "true is not one of [1,2]"),
        error("k", 'true is not of type "integer"'),
    ]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (1.0, "1.0"),
        (-0.0, "-0.0"),
        (100.0, "100.0"),
        (0.00001, "0.00001"),
        (1.5e-6, "1.5e-6"),
        (1e15, "1000000000000000.0"),
        (1e16, "1e+16"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (2**64 - 1, "18446744073709551615"),
        (2**64, "1.8446744073709552e+19"),
        (-(2**63) - 1, "-9.223372036854776e+18"),
        ({"b": [1, None], "a": "é\n\u0001"}, '{"a":"é\\n\\u0001","b":[1,null]}'),
    ],
)
def test_values_print_as_serde_json_prints_them(value: object, shown: str) -> None:
    """Messages show values as compact JSON with sorted keys and Rust's float layout."""
    assert serde_display(value) == shown


def test_inline_refs_replaces_refs_with_their_components() -> None:
    """A $ref object is replaced whole by the referenced component, recursively."""
    components = {"color": COLOR, "Wrap": {"allOf": [{"$ref": "#/components/schemas/color"}]}}
    schema = {"properties": {"c": {"allOf": [{"$ref": "#/components/schemas/Wrap"}], "x-order": 0}}}
    assert inline_refs(schema, components) == {
        "properties": {"c": {"allOf": [{"allOf": [COLOR]}], "x-order": 0}}
    }


def test_inline_refs_leaves_unknown_refs_alone() -> None:
    """A ref to a missing component stays as it is."""
    schema = {"$ref": "#/components/schemas/Nope"}
    assert inline_refs(schema, {}) == schema
