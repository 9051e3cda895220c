"""What a front end hands the service: a parsed create request, its mode, and the loop.

Below every other service module, so each of them (and every front end) can name these
without importing the facade.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class Loop(Protocol):
    """What the service needs from an event loop (an ``asyncio`` loop has all three)."""

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: object) -> object: ...

    def call_later(
        self, delay: float, callback: Callable[..., object], *args: object
    ) -> object: ...

    def time(self) -> float: ...


class Mode(str, enum.Enum):
    """How a create request wants its answer (spec §8)."""

    SYNC = "sync"
    ASYNC = "async"
    SSE = "sse"


@dataclass
class CreateRequest:
    """A parsed create envelope (spec §6)."""

    id: str | None = None
    input: Any = None
    webhook: str | None = None
    webhook_events_filter: frozenset[str] | None = None
    context: dict[str, str] = field(default_factory=dict)
    trace_headers: dict[str, str] = field(default_factory=dict)
