"""The service's settings from the environment, each parsed the way coglet parses it.

Read once per service (at construction or at ``start``); a bad value is logged and replaced
by the default, never fatal: a typo in an environment variable must not stop a server.
"""

from __future__ import annotations

import logging
import os

from nbcog.core.broadcaster import DEFAULT_HISTORY_CAPACITY

log = logging.getLogger("nbcog")

RECENT_LIMIT = 100
"""At most this many finished predictions are kept for status displays."""
DEFAULT_RECENT_BYTES = 64 * 1024 * 1024
"""Default memory budget of the finished predictions kept for status displays."""
RECENT_BYTES_ENV = "NBCOG_RECENT_BYTES"


def history_capacity_from_env() -> int:
    """``COG_STREAM_HISTORY_CAPACITY``: a non-negative integer, else 1024 with a warning.

    Parsed as coglet parses a Rust ``usize``: ASCII digits with an optional ``+``, below
    2**64 (so ``" 5"``, ``"5_0"`` and ``"-1"`` are invalid, unlike Python's ``int``).
    """
    raw = os.environ.get("COG_STREAM_HISTORY_CAPACITY")
    if raw is None:
        return DEFAULT_HISTORY_CAPACITY
    digits = raw[1:] if raw.startswith("+") else raw
    if not (digits.isascii() and digits.isdigit()) or int(digits) >= 1 << 64:
        log.warning(
            "invalid COG_STREAM_HISTORY_CAPACITY=%r; using %d", raw, DEFAULT_HISTORY_CAPACITY
        )
        return DEFAULT_HISTORY_CAPACITY
    return min(int(digits), 1 << 62)  # a deque's maxlen must fit a C ssize_t


def recent_bytes_from_env() -> int:
    """``NBCOG_RECENT_BYTES``: a non-negative integer, else 64 MiB (with a warning if invalid)."""
    raw = os.environ.get(RECENT_BYTES_ENV)
    if raw is None:
        return DEFAULT_RECENT_BYTES
    if not (raw.isascii() and raw.isdigit()):
        log.warning("invalid %s=%r; using %d", RECENT_BYTES_ENV, raw, DEFAULT_RECENT_BYTES)
        return DEFAULT_RECENT_BYTES
    return int(raw)


def setup_timeout_from_env() -> float | None:
    """``COG_SETUP_TIMEOUT``: positive integer seconds; 0 or invalid means no timeout."""
    try:
        value = int(os.environ.get("COG_SETUP_TIMEOUT", ""))
    except ValueError:
        return None
    return float(value) if value > 0 else None
