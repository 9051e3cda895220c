"""The prediction state machine and the prediction object Cog clients see (spec §9).

A ``Prediction`` is owned by one thread (the serving loop): the runner's events are applied
to it there, in production order. Its status moves along a table; an illegal move raises
``InvalidTransition`` and changes nothing, and the first terminal transition wins.
"""

from __future__ import annotations

import enum
import sys
from typing import Any

from nbcog.core import events
from nbcog.core.errors import InvalidTransition
from nbcog.core.events import Event
from nbcog.core.metrics import aggregate_metric
from nbcog.core.strictjson import scrub_surrogates


class Status(str, enum.Enum):
    """Cog's prediction statuses, as they appear on the wire."""

    STARTING = "starting"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        """Succeeded, failed and canceled never change again."""
        return self in _TERMINAL


_TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELED})

TRANSITIONS: dict[Status, frozenset[Status]] = {
    # A prediction can fail or be canceled before its slot starts work (input download
    # failure, cancel during download), so starting may end without processing.
    Status.STARTING: frozenset({Status.PROCESSING, *_TERMINAL}),
    Status.PROCESSING: _TERMINAL,
    Status.SUCCEEDED: frozenset(),
    Status.FAILED: frozenset(),
    Status.CANCELED: frozenset(),
}


class Prediction:
    """What a Cog client can learn about one prediction: status, output, logs, metrics, error.

    Args:
        prediction_id: the id from the request, or a generated ``pred_...`` id.
        created_at: clock reading at creation (seconds); ``predict_time`` counts from here.
        input: the validated input as echoed by a PUT attach (secrets masked).
        kind: ``"prediction"`` or ``"training"``.
    """

    def __init__(
        self,
        prediction_id: str,
        *,
        created_at: float,
        input: dict[str, Any] | None = None,
        kind: str = "prediction",
    ) -> None:
        self.id = prediction_id
        self.kind = kind
        self.input: dict[str, Any] = input or {}
        self.created_at = created_at
        self.completed_at: float | None = None
        self.status = Status.STARTING
        self.chunks: list[Any] = []
        self.metrics: dict[str, Any] = {}
        self.error: str | None = None
        self.output: Any = None
        self._log_parts: list[str] = []
        self._logs_joined = ""
        self._logs_joined_parts = 0
        self._event_bytes = 0  # chunks and log parts, sized as they arrive

    # -- state -------------------------------------------------------------------------

    def _move(self, target: Status) -> None:
        if target not in TRANSITIONS[self.status]:
            msg = f"prediction {self.id}: cannot move from {self.status.value} to {target.value}"
            raise InvalidTransition(msg)
        self.status = target

    @property
    def is_terminal(self) -> bool:
        """True once succeeded, failed or canceled."""
        return self.status.is_terminal

    @property
    def logs(self) -> str:
        """All captured log text so far, stdout and stderr interleaved in arrival order."""
        if self._logs_joined_parts != len(self._log_parts):
            self._logs_joined = "".join(self._log_parts)
            self._log_parts = [self._logs_joined] if self._logs_joined else []
            self._logs_joined_parts = len(self._log_parts)
        return self._logs_joined

    def apply(self, event: Event) -> None:
        """Fold one runner event (``start``, ``output``, ``log``, ``metric``) into the state.

        Events after the terminal transition (a log flushed late, say) are ignored: the
        terminal snapshot has already been sent and must stay what it was.
        """
        if self.is_terminal:
            return
        name = event.name
        if name == events.OUTPUT:
            chunk = event.data["chunk"]
            self.chunks.append(chunk)
            self._event_bytes += (
                sys.getsizeof(chunk) if chunk.__class__ is str else approx_size(chunk)
            )
        elif name == events.LOG:
            text = event.data["data"]
            self._log_parts.append(text)
            self._event_bytes += sys.getsizeof(text)
        elif name == events.METRIC:
            data = event.data
            aggregate_metric(self.metrics, data["name"], data["value"], data["mode"])
        elif name == events.START:
            self._move(Status.PROCESSING)
        else:
            msg = f"prediction {self.id}: {name!r} is not a runner event"
            raise InvalidTransition(msg)

    def finish(
        self,
        status: Status,
        *,
        completed_at: float,
        error: str | None = None,
        output_is_array: bool = False,
    ) -> Event | None:
        """Move to a terminal status and return the ``completed`` event.

        Returns None, changing nothing, when the prediction is already terminal (the first
        terminal transition wins, spec §9.3).

        Args:
            status: succeeded, failed or canceled.
            completed_at: clock reading at completion.
            error: the error string for ``failed``.
            output_is_array: the final output is the list of all chunks (an array output type,
                or a predictor that yielded or returned a list), not the single chunk.
        """
        if self.is_terminal:
            return None
        if not status.is_terminal:
            msg = f"prediction {self.id}: finish() needs a terminal status, got {status.value}"
            raise InvalidTransition(msg)
        self._move(status)
        self.completed_at = completed_at
        if status is Status.FAILED:
            self.error = scrub_surrogates(error or "")  # so the snapshot always encodes
        if status is Status.SUCCEEDED:
            if output_is_array:
                self.output = list(self.chunks)
            else:
                self.output = self.chunks[0] if self.chunks else None
        return events.completed_event(self.snapshot())

    # -- views -------------------------------------------------------------------------

    @property
    def predict_time(self) -> float | None:
        """Seconds from creation to completion, once terminal."""
        if self.completed_at is None:
            return None
        return max(0.0, self.completed_at - self.created_at)

    def _metrics_view(self) -> dict[str, Any]:
        predict_time = self.predict_time
        if predict_time is None:
            return dict(self.metrics)
        return {**self.metrics, "predict_time": predict_time}

    def snapshot(self, *, with_input: bool = False, partial_output: bool = True) -> dict[str, Any]:
        """The prediction object of webhooks, SSE ``completed`` and PUT attach (spec §9.1).

        Args:
            with_input: add the validated input (the PUT attach response).
            partial_output: include the chunks so far while not succeeded; the sync JSON
                body (spec §9.2) leaves them out.
        """
        body: dict[str, Any] = {
            "id": self.id,
            "status": self.status.value,
            "logs": self.logs,
            "metrics": self._metrics_view(),
        }
        if self.status is Status.SUCCEEDED:
            body["output"] = self.output
        elif self.chunks and partial_output:
            body["output"] = list(self.chunks)
        if self.status is Status.FAILED:
            body["error"] = self.error
        if with_input:
            body["input"] = self.input
        return body

    def retained_bytes(self) -> int:
        """About how much memory this prediction keeps alive: input, chunks, logs, metrics.

        ``sys.getsizeof`` of every string, number and container reachable from them; chunks
        and logs were sized as they arrived (the output shares the chunks' items). Used to
        bound the service's memory of finished predictions by bytes.
        """
        return (
            self._event_bytes
            + 8 * len(self.chunks)
            + approx_size(self.input)
            + approx_size(self.metrics)
            + approx_size(self.error)
        )

    def sync_body(self) -> dict[str, Any]:
        """The body of a sync JSON response (spec §9.2): no partial output when not succeeded."""
        return self.snapshot(partial_output=False)


def approx_size(value: Any) -> int:
    """``sys.getsizeof`` summed over ``value`` and everything in its lists, tuples and dicts.

    Iterative (any depth); each container is counted once.
    """
    total = sys.getsizeof(value)
    seen: set[int] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, dict):
            parts: Any = [*item.keys(), *item.values()]
        elif isinstance(item, (list, tuple)):
            parts = item
        else:
            continue
        total += sum(map(sys.getsizeof, parts))
        stack.extend([part for part in parts if isinstance(part, (dict, list, tuple))])
    return total
