"""The wire JSON encoding (nbcog.core.jsonenc): coglet's key order, and verbatim data URLs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nbcog.core import jsonenc
from nbcog.core.jsonenc import JSONSafeStr, dumps, dumps_spliced, is_json_safe

URL_A = JSONSafeStr("data:image/png;base64," + "QUJD" * 1000)
URL_B = JSONSafeStr("data:audio/x-wav;base64,AAAA")


def test_dumps_is_compact_sorted_utf8() -> None:
    assert dumps({"b": 1, "a": ["é", None, 1.5]}) == '{"a":["é",null,1.5],"b":1}'


@pytest.mark.parametrize(
    "value",
    [
        {"output": URL_A, "id": "p", "status": "succeeded"},
        # insertion order differs from the sorted order the encoder writes
        {"zeta": URL_B, "alpha": URL_A, "logs": 'say "hi"\n'},
        {"output": [URL_A, "token", 3, None, URL_B, URL_A], "metrics": {"predict_time": 0.1}},
        {"chunk": URL_B, "index": 7},
        # deeper than one list: encoded the ordinary way, still the same bytes
        {"output": {"nested": URL_A, "list": [[URL_B]]}},
        {"output": "plain", "logs": ""},
    ],
)
def test_dumps_spliced_is_byte_for_byte_dumps(value: dict[str, Any]) -> None:
    assert dumps_spliced(value) == dumps(value)


def test_dumps_spliced_skips_the_escape_pass_for_marked_strings() -> None:
    """Proof the splice is taken: a (wrongly) marked string is copied as it is, unescaped."""
    mislabelled = JSONSafeStr('say "hi"')
    assert dumps_spliced({"output": mislabelled}) == '{"output":"say "hi""}'
    assert dumps({"output": mislabelled}) == '{"output":"say \\"hi\\""}'


def test_a_value_that_spells_a_placeholder_is_left_as_it_is() -> None:
    """Placeholders are per process; a value that copies one still comes out right."""
    lookalike = f"{jsonenc._SLOT_PREFIX}-0"
    value = {"a": URL_B, "b": lookalike, "c": [lookalike, URL_A]}
    assert json.loads(dumps_spliced(value)) == value
    assert dumps_spliced(value) == dumps(value)


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("image/png", True),
        ("application/vnd.ms-excel", True),
        ('text/x-"q"', False),
        ("a\\b", False),
        ("tab\there", False),
        ("é/x", False),
    ],
)
def test_is_json_safe(text: str, safe: bool) -> None:
    assert is_json_safe(text) is safe
    if safe:
        assert json.dumps(text, ensure_ascii=False) == f'"{text}"'
