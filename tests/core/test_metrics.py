"""Metric validation and aggregation (spec §13), against coglet 0.23.1's rules and messages."""

from __future__ import annotations

import enum

import pytest

from nbcog.core.metrics import (
    APPEND,
    INCREMENT,
    REPLACE,
    MetricLedger,
    aggregate_metric,
    normalize_mode,
    require_str,
    to_json_value,
    validate_name,
    validate_name_structure,
    value_type,
)

# -- names ----------------------------------------------------------------------------------

NAME_RULES = [
    ("predict_time", "'predict_time' is reserved by the runtime"),
    ("cog.x", "the 'cog.' prefix is reserved for system metrics"),
    ("", "metric name must not be empty"),
    ("a" * 129, "metric name must be 128 characters or fewer (got 129 characters)"),
    ("a.b.c.d.e", "metric name must have at most 4 dot-separated segments (got 5)"),
    (".foo", "metric name must not start with a dot"),
    ("foo.", "metric name must not end with a dot"),
    ("foo..bar", "metric name must not contain empty segments (consecutive dots)"),
    ("_invalid", "metric name segment '_invalid' must start with a letter"),
    ("foo__bar", "metric name segment 'foo__bar' must not contain consecutive underscores"),
    ("x-y", "metric name segment 'x-y' contains invalid character '-'"),
    ("invalid_", "metric name segment 'invalid_' must end with a letter or digit"),
]


@pytest.mark.parametrize(("name", "message"), NAME_RULES)
def test_each_name_rule_raises_coglets_value_error(name: str, message: str) -> None:
    """Every row of the §13 name-rule table raises ValueError with coglet's exact message."""
    with pytest.raises(ValueError) as info:
        validate_name(name)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "name",
    [
        "temperature",
        "token_count",
        "TTFT",
        "T2I_latency",
        "x",
        "timing.preprocess",
        "a.b.c.d",
        "foo.bar_baz",
        "cog",
        "cogs.x",
        "predict_time.x",
        "a" * 128,
    ],
)
def test_valid_names_pass(name: str) -> None:
    """Names that follow the rules (coglet's own valid examples among them) are accepted."""
    validate_name(name)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        # coglet measures UTF-8 bytes and calls them characters (live 0.23.1).
        ("é" * 65, "metric name must be 128 characters or fewer (got 130 characters)"),
        # The reserved prefix is checked before the trailing-dot rule.
        ("cog.", "the 'cog.' prefix is reserved for system metrics"),
        # Length is checked before the segment count.
        ("a." * 64 + "b", "metric name must be 128 characters or fewer (got 129 characters)"),
        # Segments are checked left to right, and within one, character by character.
        ("a.x-y.b__c", "metric name segment 'x-y' contains invalid character '-'"),
        ("x__y-", "metric name segment 'x__y-' must not contain consecutive underscores"),
        ("x-y__", "metric name segment 'x-y__' contains invalid character '-'"),
        ("ab.1", "metric name segment '1' must start with a letter"),
        ("é", "metric name segment 'é' must start with a letter"),
        ("aé", "metric name segment 'aé' contains invalid character 'é'"),
        ("a b", "metric name segment 'a b' contains invalid character ' '"),
    ],
)
def test_name_rules_apply_in_coglets_order(name: str, message: str) -> None:
    """A name that breaks several rules reports the one coglet checks first."""
    with pytest.raises(ValueError) as info:
        validate_name(name)
    assert str(info.value) == message


@pytest.mark.parametrize("name", ["predict_time", "cog.x"])
def test_structure_check_skips_the_reserved_rules(name: str) -> None:
    """The delete-time check accepts reserved names (deleting them is harmless)."""
    validate_name_structure(name)


def test_structure_check_still_applies_structural_rules() -> None:
    """The delete-time check refuses a structurally bad name."""
    with pytest.raises(ValueError) as info:
        validate_name_structure("cog..x")
    assert str(info.value) == "metric name must not contain empty segments (consecutive dots)"


# -- modes and argument types -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "wire"),
    [
        (None, REPLACE),
        ("replace", REPLACE),
        ("incr", INCREMENT),
        ("increment", INCREMENT),
        ("append", APPEND),
    ],
)
def test_modes_map_to_wire_names(mode: str | None, wire: str) -> None:
    """None/replace send replace, incr/increment send increment, append sends append."""
    assert normalize_mode(mode) == wire


@pytest.mark.parametrize("mode", ["bogus", "Replace", "inc", ""])
def test_unknown_mode_raises_type_error(mode: str) -> None:
    """Any other mode raises coglet's TypeError, naming the mode as given."""
    with pytest.raises(TypeError) as info:
        normalize_mode(mode)
    assert str(info.value) == (
        f"Invalid metric mode: '{mode}'. Expected 'replace', 'incr', or 'append'."
    )


def test_non_str_argument_raises_like_native_parsing() -> None:
    """A non-str key or mode fails as coglet's native argument parsing does."""
    with pytest.raises(TypeError) as info:
        require_str("mode", 5)
    assert str(info.value) == "argument 'mode': 'int' object cannot be cast as 'str'"


# -- values -----------------------------------------------------------------------------------


class Level(enum.IntEnum):
    """An int subclass, which coglet treats as int."""

    HIGH = 3


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        (True, "bool"),
        (1, "int"),
        (Level.HIGH, "int"),
        (1.5, "float"),
        ("s", "str"),
        ([1], "list"),
        ({"a": 1}, "dict"),
    ],
)
def test_value_type_tags(value: object, tag: str) -> None:
    """Supported values get coglet's type tag; bool is not an int and subclasses count as base."""
    assert value_type(value) == tag


@pytest.mark.parametrize(
    ("value", "type_name"), [(None, "NoneType"), ((1,), "tuple"), ({1}, "set"), (b"x", "bytes")]
)
def test_unsupported_value_raises_type_error(value: object, type_name: str) -> None:
    """None and any other type are refused with coglet's message."""
    with pytest.raises(TypeError) as info:
        value_type(value)
    assert str(info.value) == (
        f"Unsupported metric value type: {type_name}. "
        "Expected bool, int, float, str, list, or dict."
    )


def test_json_value_is_plain_json() -> None:
    """Subclasses become base types, big ints floats, and non-finite floats None (live)."""
    value = to_json_value({"k": [Level.HIGH, 2**64, float("nan"), float("-inf"), True, None]})
    assert value == {"k": [3, 1.8446744073709552e19, None, None, True, None]}
    assert type(value["k"][0]) is int


def test_json_value_keeps_i64_bounds_as_ints() -> None:
    """Ints that fit in 64 signed bits stay ints."""
    assert to_json_value([2**63 - 1, -(2**63)]) == [2**63 - 1, -(2**63)]
    assert to_json_value(2**63) == 9.223372036854776e18


def test_nested_unsupported_value_raises() -> None:
    """A nested value that is not JSON-like raises coglet's conversion message (live)."""
    with pytest.raises(TypeError) as info:
        to_json_value([1, {2}])
    assert str(info.value) == "Cannot convert set to JSON metric value"


def test_nested_non_str_dict_key_raises() -> None:
    """A dict with a non-str key raises coglet's cast message (live)."""
    with pytest.raises(TypeError) as info:
        to_json_value({1: 2})
    assert str(info.value) == "'int' object cannot be cast as 'str'"


# -- the ledger: order of checks and the type lock -----------------------------------------------


def test_type_lock_refuses_another_type() -> None:
    """A key keeps the type of its first value until it is deleted."""
    ledger = MetricLedger()
    ledger.record("m", 1, REPLACE)
    with pytest.raises(TypeError) as info:
        ledger.record("m", "s", REPLACE)
    assert str(info.value) == "Metric 'm' has type int, cannot set to str without deleting first"


def test_int_and_float_are_different_types() -> None:
    """int and float lock separately, as in coglet (live)."""
    ledger = MetricLedger()
    ledger.record("n", 1, REPLACE)
    with pytest.raises(TypeError) as info:
        ledger.record("n", 1.5, REPLACE)
    assert str(info.value) == "Metric 'n' has type int, cannot set to float without deleting first"


def test_append_locks_the_argument_type() -> None:
    """Append locks the type of the appended argument, not of the resulting array (live)."""
    ledger = MetricLedger()
    ledger.record("m", [1], APPEND)
    with pytest.raises(TypeError) as info:
        ledger.record("m", 2, APPEND)
    assert str(info.value) == "Metric 'm' has type list, cannot set to int without deleting first"


def test_delete_releases_the_lock() -> None:
    """After a delete the key accepts any type again."""
    ledger = MetricLedger()
    ledger.record("m", 1, REPLACE)
    ledger.delete("m")
    assert ledger.record("m", "s", REPLACE) == "s"


def test_delete_checks_structure_only() -> None:
    """Deleting a reserved name is accepted; a malformed one is refused."""
    ledger = MetricLedger()
    ledger.delete("predict_time")
    ledger.delete("cog.x")
    with pytest.raises(ValueError) as info:
        ledger.delete("_x")
    assert str(info.value) == "metric name segment '_x' must start with a letter"


@pytest.mark.parametrize(("value", "tag"), [("s", "str"), (True, "bool"), ([1], "list")])
def test_increment_needs_a_number(value: object, tag: str) -> None:
    """incr with anything but int or float raises coglet's TypeError."""
    with pytest.raises(TypeError) as info:
        MetricLedger().record("m", value, INCREMENT)
    assert str(info.value) == f"Increment mode requires int or float, got {tag}"


def test_checks_run_name_value_lock_increment_in_order() -> None:
    """The name is judged before the value, and the type lock before the increment rule."""
    ledger = MetricLedger()
    with pytest.raises(ValueError) as name_error:
        ledger.record("predict_time", None, REPLACE)
    assert str(name_error.value) == "'predict_time' is reserved by the runtime"
    ledger.record("m", 1, REPLACE)
    with pytest.raises(TypeError) as info:
        ledger.record("m", "s", INCREMENT)
    assert str(info.value) == "Metric 'm' has type int, cannot set to str without deleting first"


def test_refused_record_leaves_the_lock_alone() -> None:
    """A record that fails conversion does not lock its key, and keys counts accepted ones."""
    ledger = MetricLedger()
    with pytest.raises(TypeError):
        ledger.record("d", {1: 2}, REPLACE)
    ledger.record("d", "s", REPLACE)
    ledger.record("e", 1.0, INCREMENT)
    assert len(ledger) == 2


def test_record_returns_the_json_value() -> None:
    """The value to send is the converted argument (NaN becomes None)."""
    assert MetricLedger().record("g", float("nan"), REPLACE) is None


# -- aggregation ------------------------------------------------------------------------------


def fold(*calls: tuple[str, object, str]) -> dict[str, object]:
    """Aggregate calls into a fresh metrics object."""
    metrics: dict[str, object] = {}
    for name, value, mode in calls:
        aggregate_metric(metrics, name, value, mode)
    return metrics


def test_replace_sets_and_none_deletes() -> None:
    """replace overwrites; None removes the key."""
    assert fold(("t", 0.7, REPLACE), ("t", 0.9, REPLACE)) == {"t": 0.9}
    assert fold(("t", 0.7, REPLACE), ("t", None, REPLACE)) == {}


def test_dotted_keys_nest() -> None:
    """timing.pre and timing.post share one nested object."""
    metrics = fold(
        ("timing.pre", 0.1, REPLACE), ("timing.post", 0.2, REPLACE), ("a.b.c", 1, REPLACE)
    )
    assert metrics == {"timing": {"pre": 0.1, "post": 0.2}, "a": {"b": {"c": 1}}}


def test_nested_delete_keeps_the_parent_object() -> None:
    """Deleting timing.pre leaves {"timing": {}}, as coglet does."""
    assert fold(("timing.pre", 0.1, REPLACE), ("timing.pre", None, REPLACE)) == {"timing": {}}


def test_nested_delete_of_missing_path_creates_parents() -> None:
    """Deleting x.y when nothing exists leaves {"x": {}} (live coglet 0.23.1)."""
    assert fold(("x.y", None, REPLACE)) == {"x": {}}


def test_nested_path_replaces_a_non_object() -> None:
    """Recording a.b over a scalar a replaces a with an object (live)."""
    assert fold(("a", 5, REPLACE), ("a.b", 1, REPLACE)) == {"a": {"b": 1}}


def test_increment_int_sums_stay_int() -> None:
    """int + int is an int, and a missing key starts at 0."""
    metrics = fold(("c", 1, INCREMENT), ("c", 3, INCREMENT), ("s.tokens", 10, INCREMENT))
    assert metrics == {"c": 4, "s": {"tokens": 10}}
    assert type(metrics["c"]) is int


def test_increment_with_a_float_is_a_float_sum() -> None:
    """int + float and float + int are float sums."""
    metrics = fold(
        ("c", 1, INCREMENT), ("c", 2.0, INCREMENT), ("f", 1.5, INCREMENT), ("f", 2, INCREMENT)
    )
    assert metrics == {"c": 3.0, "f": 3.5}
    assert type(metrics["c"]) is float


def test_increment_wraps_at_64_bits() -> None:
    """int sums wrap like coglet's i64 wrapping_add (live: 2**63-1 + 1)."""
    assert fold(("h", 2**63 - 1, INCREMENT), ("h", 1, INCREMENT)) == {"h": -(2**63)}


def test_increment_overflow_stores_null() -> None:
    """A float sum that overflows is stored as None, which later appends wrap (live)."""
    metrics = fold(("i", 1e308, INCREMENT), ("i", 1e308, INCREMENT))
    assert metrics == {"i": None}
    aggregate_metric(metrics, "i", 1.0, APPEND)
    assert metrics == {"i": [None, 1.0]}


def test_increment_leaves_a_non_number_alone() -> None:
    """Incrementing an object or bool changes nothing (live: a stays {"b": 1})."""
    assert fold(("a.b", 1, REPLACE), ("a", 1, INCREMENT)) == {"a": {"b": 1}}
    assert fold(("b", True, REPLACE), ("b", 1, INCREMENT)) == {"b": True}


def test_ignored_increment_still_creates_the_key() -> None:
    """coglet stores 0 under a missing key before adding, even when the add is skipped."""
    assert fold(("k", None, INCREMENT)) == {"k": 0}


def test_append_starts_an_array_and_pushes() -> None:
    """append makes [v] for a missing key and pushes onto an array."""
    assert fold(("lp", -1.2, APPEND), ("lp", -0.3, APPEND)) == {"lp": [-1.2, -0.3]}


def test_append_to_a_non_array_wraps_it() -> None:
    """An existing non-array becomes [old, new]."""
    assert fold(("v", 1, REPLACE), ("v", 2, APPEND)) == {"v": [1, 2]}


def test_append_of_a_list_nests_it() -> None:
    """Appending a list pushes it as one element (live: [[1]])."""
    assert fold(("m", [1], APPEND)) == {"m": [[1]]}


def test_totals_do_not_alias_event_values() -> None:
    """Later appends never change a value already handed to subscribers."""
    first = [1]
    metrics = fold(("m", first, REPLACE), ("m", 2, APPEND))
    assert metrics == {"m": [1, 2]}
    assert first == [1]


def test_empty_segments_are_ignored() -> None:
    """Names with empty segments are dropped, as coglet's aggregation does."""
    assert fold(("", 1, REPLACE), ("a..b", 1, REPLACE), ("a.", 1, REPLACE)) == {}


def test_unknown_wire_mode_is_a_bug() -> None:
    """A wire mode that is not replace, increment or append raises."""
    with pytest.raises(ValueError) as info:
        fold(("a", 1, "incr"))
    assert str(info.value) == "unknown metric mode 'incr'"
