"""The one JSON encoding nbcog puts on the wire: compact, UTF-8, keys sorted like coglet's."""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from nbcog.core.strictjson import scrub_surrogates

__all__ = ["JSONSafeStr", "dumpb", "dumps", "dumps_spliced", "is_json_safe"]

_encoder = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=True
)


class JSONSafeStr(str):
    """A string that appears in JSON exactly as it is: no ``"``, ``\\`` or control character.

    A base64 data URL is one. Marking it lets ``dumps_spliced`` copy a 27 MB data URL (a
    20 MB file) into the response instead of running the encoder's escape scan over it,
    which costs about as much as the base64 encoding itself. Only mark strings whose
    characters you know; ``is_json_safe`` checks short ones.
    """

    __slots__ = ()


def is_json_safe(text: str) -> bool:
    """Whether ``text`` is printable ASCII with no ``"`` or ``\\`` (its JSON form is itself)."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


# Per-process placeholders ("<prefix>-<n>"): no value a predictor returns spells one by chance.
_SLOT_PREFIX = f"nbcog-splice-{secrets.token_hex(16)}"
_SLOT_JSON = re.compile(f'"{_SLOT_PREFIX}-([0-9]+)"')


def dumps(value: Any) -> str:
    """Encode ``value`` as coglet does (sorted keys at every level, no spaces)."""
    return _encoder.encode(value)


def dumpb(value: Any) -> bytes:
    """``dumps`` as UTF-8 bytes, ready for a response body.

    A lone surrogate (an in-process input made with ``os.fsdecode``, say) is sent as U+FFFD
    rather than failing the whole response.
    """
    text = _encoder.encode(value)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return scrub_surrogates(text).encode()


def dumps_spliced(value: dict[str, Any]) -> str:
    """``dumps(value)``, byte for byte, copying ``JSONSafeStr`` values in without escaping.

    Looks where prediction objects and ``output`` events keep file outputs: the dict's own
    values and the items of lists among them. Anything deeper is encoded normally.
    """
    verbatim: list[str] = []

    def swap(item: Any) -> Any:
        if item.__class__ is JSONSafeStr:
            verbatim.append(item)
            return f"{_SLOT_PREFIX}-{len(verbatim) - 1}"
        return item

    shallow: dict[str, Any] = {}
    for key, item in value.items():
        if item.__class__ is list and JSONSafeStr in map(type, item):
            shallow[key] = [swap(x) for x in item]
        else:
            shallow[key] = swap(item)
    if not verbatim:
        return dumps(value)
    # [text, slot number, text, slot number, ..., text], in the encoder's (sorted) order.
    parts = _SLOT_JSON.split(dumps(shallow))
    numbers = parts[1::2]
    if sorted(map(int, numbers)) != list(range(len(verbatim))):
        return dumps(value)  # unreachable unless a value spells a placeholder: stay correct
    pieces = [parts[0]]
    for number, text in zip(numbers, parts[2::2], strict=True):
        pieces += ['"', verbatim[int(number)], '"', text]
    return "".join(pieces)
