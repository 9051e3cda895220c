"""Metric names, modes and values (coglet's rules and messages), and their aggregation.

Validation happens on the predictor's thread, where the errors must be raised; aggregation
happens on the serving loop when the ``metric`` event is applied to the prediction.
"""

from __future__ import annotations

from typing import Any

REPLACE = "replace"
INCREMENT = "increment"
APPEND = "append"


def aggregate_metric(metrics: dict[str, Any], name: str, value: Any, mode: str) -> None:
    """Fold one accepted metric record into ``metrics`` (spec §13 "Aggregation").

    Args:
        metrics: the prediction's nested metrics object, changed in place.
        name: dotted key; ``timing.pre`` nests as ``{"timing": {"pre": ...}}``.
        value: the recorded argument; ``None`` with ``replace`` deletes the key.
        mode: wire mode, ``replace``, ``increment`` or ``append``.
    """
    *parents, leaf = name.split(".")
    node = metrics
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            if value is None and mode == REPLACE:
                return
            child = {}
            node[part] = child
        node = child
    if mode == REPLACE:
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    elif mode == INCREMENT:
        old = node.get(leaf, 0)
        if isinstance(old, bool) or not isinstance(old, (int, float)):
            old = 0
        if type(old) is int and type(value) is int:
            node[leaf] = old + value
        else:
            node[leaf] = float(old) + float(value)
    elif mode == APPEND:
        old = node.get(leaf)
        if old is None:
            node[leaf] = [value]
        elif isinstance(old, list):
            old.append(value)
        else:
            node[leaf] = [old, value]
    else:
        msg = f"unknown metric mode {mode!r}"
        raise ValueError(msg)
