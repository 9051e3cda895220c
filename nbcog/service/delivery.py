"""Events from the runner, applied and published on the serving loop's thread.

Worker threads never touch a ``Prediction`` or ``Broadcaster``: they put events on the
prediction's ``EventPipe``, which hands them here in batches. ``Delivery`` applies each batch
to the prediction, publishes it to the subscribers, the process-wide observers and the
webhook tracker, and, on the runner's ``Finished``, ends the prediction: slot freed first,
then ``completed`` published, ``on_done`` callbacks run and listeners told.
"""

from __future__ import annotations

import logging
import weakref

from nbcog.core.errors import describe_exception
from nbcog.core.events import Event
from nbcog.core.prediction import Status
from nbcog.runner.worker import Finished, Runner
from nbcog.service.inflight import InFlight
from nbcog.service.registry import Registry
from nbcog.service.request import Loop

log = logging.getLogger("nbcog")


class Delivery:
    """Applies and publishes each prediction's events, and ends it (loop thread only)."""

    def __init__(self, registry: Registry, loop: Loop) -> None:
        self._registry = registry
        self._loop = loop

    def deliver_to(self, ref: weakref.ref[InFlight], batch: list[Event | Finished]) -> None:
        """The pipe's callback: it holds its entry weakly (see ``PredictionService._start``).

        An error while applying or publishing (a bug, or a value that cannot be encoded)
        ends the prediction ``failed`` here, so its slot and its waiters are never left
        hanging; the rest of the batch is dropped.
        """
        entry = ref()
        if entry is None:  # finished and forgotten: ignored, like any late event
            return
        try:
            self.deliver(entry, batch)
        except Exception as exc:
            log.exception("nbcog could not deliver events of %s", entry.prediction.id)
            Runner.cancel(entry.job)  # stop the predictor: nothing it produces can be sent
            self._registry.release(entry)
            if not entry.prediction.is_terminal:
                error = f"Prediction failed: internal error: {describe_exception(exc)}"
                self.finish(entry, Finished(Status.FAILED, error))

    def deliver(self, entry: InFlight, batch: list[Event | Finished]) -> None:
        """Apply and publish ``batch``; a ``Finished`` in it ends the prediction."""
        # The hot loop of a fast stream. Nothing in it can end the prediction (only finish
        # does), so "terminal" is checked once and the bound methods are looked up once.
        prediction = entry.prediction
        tracker = entry.tracker
        published: list[Event] = []
        finished: Finished | None = None
        live = not prediction.is_terminal
        apply, keep = prediction.apply, published.append
        for item in batch:
            if isinstance(item, Finished):
                finished = item
            elif live:
                apply(item)
                keep(item)
                if tracker is not None:
                    tracker.observe(item, prediction)
        entry.broadcaster.publish(published)
        observers = self._registry.observers
        if observers:  # the ref is held weakly: make (or find) it only when someone looks
            ref = entry.ref
            for observer in observers:
                observer(ref, published)
        if finished is not None:
            self.finish(entry, finished)

    def finish(self, entry: InFlight, finished: Finished) -> None:
        """End the prediction as the runner (or the service) says it ended."""
        # The slot is free before anyone hears of the end, so a client that sends its next
        # request right after the response never sees a spurious 409 (spec §21.1).
        self._registry.release(entry)
        entry.finished = finished
        # Nothing is left to cancel: the counting streams (each holding the entry) go, so the
        # entry is freed by reference counting even if a follower never closes its stream.
        entry.counted_streams.clear()
        completed = entry.prediction.finish(
            finished.status,
            completed_at=self._loop.time(),
            error=finished.error,
            output_is_array=finished.output_is_array,
        )
        self._registry.remember(entry.prediction)
        if completed is None:
            return
        entry.completed = completed
        entry.broadcaster.publish([completed])
        if entry.tracker is not None:
            entry.tracker.observe(completed, entry.prediction)
        entry.run_done_callbacks()
        self._registry.notify("finished", entry)
