"""The one JSON encoding nbcog puts on the wire: compact, UTF-8, keys sorted like coglet's."""

from __future__ import annotations

import json
from typing import Any

_encoder = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=True
)


def dumps(value: Any) -> str:
    """Encode ``value`` as coglet does (sorted keys at every level, no spaces)."""
    return _encoder.encode(value)


def dumpb(value: Any) -> bytes:
    """``dumps`` as UTF-8 bytes, ready for a response body."""
    return _encoder.encode(value).encode()
