"""One prediction made from inside the kernel, through the same service HTTP clients use.

``run_prediction`` is a coroutine for the serving loop: it waits for setup if it is still
running, creates the prediction (same checks, same ids, same slots as ``POST /predictions``:
an outside client sees it as ``BUSY``), hands each log event to ``emit`` as it happens, and
returns a ``PredictionResult`` once the prediction is terminal. Cancelling the coroutine (an
interrupted cell) cancels the prediction, says so through ``emit``, and waits until it has ended
``canceled``, so the slot is free again when the cell reports the interrupt.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nbcog.core import events
from nbcog.core.events import Event
from nbcog.core.failures import failure_reason
from nbcog.kernel.render import output_parts
from nbcog.service import CreateRequest, Health, Mode, PredictionRef, PredictionService


@dataclass(frozen=True)
class PredictionResult:
    """A finished prediction: the fields of Cog's sync response, displayed as its output."""

    id: str
    status: str
    output: Any
    logs: str
    metrics: dict[str, Any]
    error: str | None = None
    output_schema: Mapping[str, Any] | None = field(default=None, repr=False)
    traceback: str | None = field(default=None, repr=False)
    """A failure's traceback from the user's first frame (not part of Cog's response)."""

    @property
    def parts(self) -> list[Any]:
        """The output as displayable parts (text, images, files)."""
        return output_parts(self.output, self.output_schema)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        for part in self.parts:
            display(part)


class PredictionFailed(Exception):
    """The prediction ended ``failed`` or ``canceled``; ``result`` has its logs and metrics.

    ``str()`` is the exception predict() raised (``ValueError: n=3 is not supported``). The
    notebook shows the failure once: without a view, as the user's traceback from their first
    frame, where a local call's would be; under a live view (``in_view``), which already shows
    the error line and the traceback, as one line that only marks the cell failed (so ``Run
    All`` stops there).
    """

    def __init__(self, result: PredictionResult, *, in_view: bool = False) -> None:
        if result.status == "failed":
            message = failure_reason(result.error or "failed")
        else:
            message = f"{result.id} was {result.status}"
        super().__init__(message)
        self.result = result
        self.in_view = in_view

    def _render_traceback_(self) -> list[str]:
        """The user's traceback, or one line under a view or without a traceback (canceled)."""
        name = type(self).__name__
        if self.result.status == "failed" and self.in_view:
            return [f"{name}: {self.result.id} failed; the view above shows why"]
        if self.result.status == "failed" and self.result.traceback:
            return self.result.traceback.rstrip("\n").splitlines()
        return [f"{name}: {self}"]


async def setup_done(service: PredictionService) -> None:
    """Wait until setup has ended, READY or SETUP_FAILED (serving loop only)."""
    ended: asyncio.Future[Health] = asyncio.get_running_loop().create_future()

    def end(health: Health) -> None:
        if not ended.done():
            ended.set_result(health)

    service.on_setup_done(end)
    await ended


async def run_prediction(
    service: PredictionService,
    values: Mapping[str, Any],
    emit: Callable[[Event | str | PredictionRef], None],
) -> PredictionResult:
    """Create a prediction with input ``values`` and wait for its end (serving loop only).

    ``emit`` receives the new prediction's ``PredictionRef`` first (for a live view), then its log
    events and notices.

    Raises:
        NbcogError: as for ``POST /predictions`` (not ready, busy, invalid input).
        asyncio.CancelledError: after the cancelled prediction has ended.
    """
    await setup_done(service)
    ref = service.create(CreateRequest(input=dict(values)), mode=Mode.ASYNC)
    emit(ref)
    wake = asyncio.Event()
    subscription = ref.subscribe(wake.set)
    finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def finish(_: PredictionRef) -> None:
        if not finished.done():
            finished.set_result(None)

    ref.on_done(finish)
    try:
        while not subscription.done:
            await wake.wait()
            wake.clear()
            for event in subscription.take():
                if event.name == events.LOG:
                    emit(event)
        await finished  # a lagged subscription ends before the prediction does
    except asyncio.CancelledError:
        service.cancel(ref.prediction.id)
        emit(f"cancelling {ref.prediction.id} (interrupt again to stop waiting for it)\n")
        await asyncio.shield(finished)
        raise
    finally:
        subscription.close()
    prediction = ref.prediction
    return PredictionResult(
        id=prediction.id,
        status=prediction.status.value,
        output=prediction.output,
        logs=prediction.logs,
        metrics=prediction.sync_body()["metrics"],
        error=prediction.error,
        output_schema=service.schema.output() if service.schema is not None else None,
        traceback=ref.traceback,
    )


def show(item: Event | str | PredictionRef) -> None:
    """Write a log event to the cell's stdout or stderr (as ``cog predict`` does), or a notice."""
    if isinstance(item, PredictionRef):
        return
    if isinstance(item, str):
        stream, text = sys.stderr, item
    else:
        stream = sys.stderr if item.data["source"] == "stderr" else sys.stdout
        text = item.data["data"]
    stream.write(text)
    stream.flush()
