"""Prediction events: what SSE streams, webhooks and the widget all observe.

An event is built once, on the thread that produced it, and carries its SSE encoding with it,
so a prediction with N subscribers costs one JSON encoding per event, not N (the SSE write
path only joins bytes). Names and payloads are coglet 0.23.1's (spec §11.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from json.encoder import encode_basestring as _json_str
from typing import Any

from nbcog.core.jsonenc import dumps

START = "start"
OUTPUT = "output"
LOG = "log"
METRIC = "metric"
COMPLETED = "completed"
ERROR = "error"

TERMINAL_EVENTS = frozenset({COMPLETED, ERROR})

REPLAY_TRUNCATED = "SSE stream replay truncated; events were dropped"
STREAM_LAGGED = "SSE stream lagged; events were dropped"


@dataclass(frozen=True, slots=True)
class Event:
    """One prediction event.

    Attributes:
        name: the SSE event name (``start``, ``output``, ``log``, ``metric``, ``completed``,
            ``error``).
        data: the JSON-ready payload, exactly the fields the wire carries.
        wire: ``event: <name>\\ndata: <compact JSON>\\n\\n`` as bytes.
    """

    name: str
    data: dict[str, Any]
    wire: bytes

    @property
    def ends_stream(self) -> bool:
        """True for ``completed`` and ``error``: a stream closes right after them."""
        return self.name in TERMINAL_EVENTS


def make_event(name: str, data: dict[str, Any]) -> Event:
    """Build an event and its SSE bytes (one line of compact JSON, so no data splitting)."""
    return Event(name, data, f"event: {name}\ndata: {dumps(data)}\n\n".encode())


def start_event(prediction_id: str) -> Event:
    """``start``: the prediction has a slot and is processing."""
    return make_event(START, {"id": prediction_id, "status": "processing"})


def output_event(chunk: Any, index: int) -> Event:
    """``output``: one encoded chunk (files already turned into data or upload URLs)."""
    if chunk.__class__ is str:
        # A token stream's case, 4x cheaper than the general encoder, byte for byte the same.
        wire = f'event: output\ndata: {{"chunk":{_json_str(chunk)},"index":{index:d}}}\n\n'
        return Event(OUTPUT, {"chunk": chunk, "index": index}, wire.encode())
    return make_event(OUTPUT, {"chunk": chunk, "index": index})


def log_event(source: str, data: str) -> Event:
    """``log``: one chunk of captured text from ``stdout`` or ``stderr``."""
    return make_event(LOG, {"source": source, "data": data})


def metric_event(name: str, value: Any, mode: str) -> Event:
    """``metric``: one accepted record or delete; ``value`` is the argument, not the total."""
    return make_event(METRIC, {"name": name, "value": value, "mode": mode})


def completed_event(snapshot: dict[str, Any]) -> Event:
    """``completed``: the terminal snapshot; nothing follows it."""
    return make_event(COMPLETED, snapshot)


def stream_error_event(message: str, skipped: int) -> Event:
    """``error``: a subscriber lost events (truncated replay or lag) and is being closed."""
    return make_event(ERROR, {"error": message, "skipped": skipped})


KEEPALIVE = b": keep-alive\n\n"
