"""coglet 0.23.1's webhook policy as data: event kinds, retry schedule, limits, throttle setting.

Kept apart from the threads that apply it (``webhooks.py``) and the per-prediction decisions
(``webhook_tracker.py``) so the numbers of spec §15 can be read, and tested, in one place.
"""

from __future__ import annotations

import math

START = "start"
OUTPUT = "output"
LOGS = "logs"
COMPLETED = "completed"
ALL_EVENTS = frozenset({START, OUTPUT, LOGS, COMPLETED})

DEFAULT_THROTTLE_INTERVAL = 0.5
MAX_RETRIES = 12
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REQUEST_TIMEOUT = 30.0
MAX_PENDING = 1000
_BACKOFF_BASE = 0.1


def backoff_delay(retry: int) -> float:
    """Seconds to wait before retry number ``retry`` (1-based): 0.2, 0.4, ... 102.4, 102.4."""
    return _BACKOFF_BASE * 2.0 ** min(retry, 10)


def throttle_interval(raw: str | None) -> float:
    """``COG_THROTTLE_RESPONSE_INTERVAL`` as coglet reads it: float seconds, whole milliseconds.

    Unset or unparsable means 0.5 s; negative and NaN saturate to 0, as Rust's float-to-integer
    cast does.
    """
    if raw is None:
        return DEFAULT_THROTTLE_INTERVAL
    try:
        seconds = float(raw)
    except ValueError:
        return DEFAULT_THROTTLE_INTERVAL
    if not seconds > 0:
        return 0.0
    if math.isinf(seconds):
        return seconds
    return math.floor(seconds * 1000) / 1000
