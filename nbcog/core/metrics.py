"""Metric names, modes and values (coglet's rules and messages), and their aggregation.

Validation happens on the predictor's thread, where the errors must be raised; aggregation
happens on the serving loop when the ``metric`` event is applied to the prediction. Both copy
coglet 0.23.1 (``crates/coglet-python/src/metric_scope.rs`` for validation,
``crates/coglet/src/prediction.rs`` ``set_metric`` for aggregation), quirks included: the
checks run in coglet's order, so a call that breaks two rules reports the same one.
"""

from __future__ import annotations

import copy
import math
from typing import Any

REPLACE = "replace"
INCREMENT = "increment"
APPEND = "append"

MAX_NAME_BYTES = 128
MAX_NAME_SEGMENTS = 4

_MODES: dict[str | None, str] = {
    None: REPLACE,
    "replace": REPLACE,
    "incr": INCREMENT,
    "increment": INCREMENT,
    "append": APPEND,
}

# coglet's type tags, tested in this order: bool before int, because bool is an int.
_VALUE_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "bool"),
    (int, "int"),
    (float, "float"),
    (str, "str"),
    (list, "list"),
    (dict, "dict"),
)

_I64_MIN = -(2**63)
_I64_SPAN = 2**64


# -- validation (predictor thread) ----------------------------------------------------------


def require_str(argument: str, value: object) -> str:
    """Reject a non-str key or mode the way coglet's native argument parsing does.

    coglet's methods take ``key: &str`` and ``mode: Option<&str>``, so a wrong type fails
    before any rule runs, even on the no-op scope.
    """
    if not isinstance(value, str):
        msg = f"argument '{argument}': '{type(value).__qualname__}' object cannot be cast as 'str'"
        raise TypeError(msg)
    return value


def normalize_mode(mode: str | None) -> str:
    """Map a user's mode to its wire name (``incr`` travels as ``increment``)."""
    try:
        return _MODES[mode]
    except KeyError:
        msg = f"Invalid metric mode: '{mode}'. Expected 'replace', 'incr', or 'append'."
        raise TypeError(msg) from None


def validate_name(name: str) -> None:
    """Check a name that is being recorded: the two reserved rules, then the structure."""
    if name == "predict_time":
        msg = "'predict_time' is reserved by the runtime"
        raise ValueError(msg)
    if name.startswith("cog."):
        msg = "the 'cog.' prefix is reserved for system metrics"
        raise ValueError(msg)
    validate_name_structure(name)


def validate_name_structure(name: str) -> None:
    """Check the structural name rules only; deletes use this (deleting is always harmless)."""
    if not name:
        msg = "metric name must not be empty"
        raise ValueError(msg)
    # coglet measures UTF-8 bytes but calls them characters.
    size = len(name.encode())
    if size > MAX_NAME_BYTES:
        msg = f"metric name must be {MAX_NAME_BYTES} characters or fewer (got {size} characters)"
        raise ValueError(msg)
    segments = name.split(".")
    if len(segments) > MAX_NAME_SEGMENTS:
        msg = (
            f"metric name must have at most {MAX_NAME_SEGMENTS} dot-separated segments "
            f"(got {len(segments)})"
        )
        raise ValueError(msg)
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        if not segment:
            if index == 0:
                msg = "metric name must not start with a dot"
            elif index == last:
                msg = "metric name must not end with a dot"
            else:
                msg = "metric name must not contain empty segments (consecutive dots)"
            raise ValueError(msg)
        _validate_segment(segment)


def _validate_segment(segment: str) -> None:
    """One segment, scanned left to right so the first offending character decides."""
    if not (segment[0].isascii() and segment[0].isalpha()):
        msg = f"metric name segment '{segment}' must start with a letter"
        raise ValueError(msg)
    after_underscore = False
    for char in segment[1:]:
        if char == "_":
            if after_underscore:
                msg = f"metric name segment '{segment}' must not contain consecutive underscores"
                raise ValueError(msg)
            after_underscore = True
        elif char.isascii() and char.isalnum():
            after_underscore = False
        else:
            msg = f"metric name segment '{segment}' contains invalid character '{char}'"
            raise ValueError(msg)
    if after_underscore:
        msg = f"metric name segment '{segment}' must end with a letter or digit"
        raise ValueError(msg)


def value_type(value: object) -> str:
    """The type tag a key is locked to: ``bool``, ``int``, ``float``, ``str``, ``list``, ``dict``.

    Subclasses count as their base (an ``IntEnum`` is an ``int``), as in coglet.
    """
    for kind, tag in _VALUE_TYPES:
        if isinstance(value, kind):
            return tag
    msg = (
        f"Unsupported metric value type: {type(value).__name__}. "
        "Expected bool, int, float, str, list, or dict."
    )
    raise TypeError(msg)


def to_json_value(value: Any) -> Any:
    """Turn an accepted value into the plain JSON tree coglet sends (its ``py_to_json``).

    Subclasses become their base type; ints outside the signed 64-bit range become floats;
    NaN and infinities become ``None`` (serde_json has no non-finite numbers), so recording
    ``float("nan")`` in replace mode deletes the key, exactly as in coglet.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        number = int.__int__(value)
        if _I64_MIN <= number < -_I64_MIN:
            return number
        return _finite(float(number))
    if isinstance(value, float):
        return _finite(float.__float__(value))
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, list):
        return [to_json_value(item) for item in list.__iter__(value)]
    if isinstance(value, dict):
        return {require_dict_key(key): to_json_value(item) for key, item in dict.items(value)}
    msg = f"Cannot convert {type(value).__name__} to JSON metric value"
    raise TypeError(msg)


def require_dict_key(key: object) -> str:
    """A dict value's keys must be str; coglet's message has no argument name here."""
    if not isinstance(key, str):
        msg = f"'{type(key).__qualname__}' object cannot be cast as 'str'"
        raise TypeError(msg)
    return str.__str__(key)


def _finite(number: float) -> float | None:
    return number if math.isfinite(number) else None


class MetricLedger:
    """The per-prediction type locks, and the one place a record or delete is judged.

    Each key remembers the type tag of the last accepted value argument (append included),
    and a value of another type is refused until the key is deleted. One ledger belongs to
    one prediction's scope; it is not thread-safe on its own (the scope holds a lock).
    """

    def __init__(self) -> None:
        self._types: dict[str, str] = {}

    def __len__(self) -> int:
        """Number of locked keys: what coglet's ``MetricRecorder(keys=N)`` counts."""
        return len(self._types)

    def record(self, name: str, value: Any, mode: str) -> Any:
        """Judge a record in coglet's order and lock the key; return the JSON value to send.

        Args:
            name: the dotted key as given.
            value: the user's value argument.
            mode: a wire mode from ``normalize_mode``.

        Raises:
            ValueError: a name rule is broken.
            TypeError: unsupported value, type-lock conflict, non-number increment, or a
                nested value that cannot become JSON. The lock is unchanged then.
        """
        validate_name(name)
        tag = value_type(value)
        locked = self._types.get(name)
        if locked is not None and locked != tag:
            msg = f"Metric '{name}' has type {locked}, cannot set to {tag} without deleting first"
            raise TypeError(msg)
        if mode == INCREMENT and tag not in ("int", "float"):
            msg = f"Increment mode requires int or float, got {tag}"
            raise TypeError(msg)
        json_value = to_json_value(value)
        self._types[name] = tag
        return json_value

    def delete(self, name: str) -> None:
        """Judge a delete (structural rules only) and release the key's type lock."""
        validate_name_structure(name)
        self._types.pop(name, None)


# -- aggregation (serving loop) -------------------------------------------------------------


def aggregate_metric(metrics: dict[str, Any], name: str, value: Any, mode: str) -> None:
    """Fold one accepted metric record into ``metrics`` (spec §13 "Aggregation").

    Mirrors coglet's ``set_metric``, whose edge cases are observable in the final metrics:
    intermediate objects are created (and non-objects on the path replaced by ``{}``) even
    for a delete, so deleting ``x.y`` leaves ``{"x": {}}``; an increment first stores 0 under
    a missing key and then leaves a non-numeric value untouched; int + int wraps at 64 bits;
    a float sum that overflows is stored as ``None``.

    Args:
        metrics: the prediction's nested metrics object, changed in place.
        name: dotted key; ``timing.pre`` nests as ``{"timing": {"pre": ...}}``.
        value: the JSON value from the event; ``None`` with ``replace`` deletes the key.
        mode: wire mode, ``replace``, ``increment`` or ``append``.
    """
    *parents, leaf = name.split(".")
    if not leaf or "" in parents:
        return  # coglet drops these; the scope never sends them
    node = metrics
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    if mode == REPLACE:
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = _detached(value)
    elif mode == INCREMENT:
        old = node.setdefault(leaf, 0)
        if _is_int(old) and _is_int(value):
            node[leaf] = (old + value - _I64_MIN) % _I64_SPAN + _I64_MIN
        elif _is_number(old) and _is_number(value):
            node[leaf] = _finite(float(old) + float(value))
    elif mode == APPEND:
        if leaf not in node:
            node[leaf] = [_detached(value)]
        elif isinstance(node[leaf], list):
            node[leaf].append(_detached(value))
        else:
            node[leaf] = [node[leaf], _detached(value)]
    else:
        msg = f"unknown metric mode {mode!r}"
        raise ValueError(msg)


def _detached(value: Any) -> Any:
    """A copy of a list or dict value, so appending to the total never edits the event."""
    return copy.deepcopy(value) if isinstance(value, (list, dict)) else value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
