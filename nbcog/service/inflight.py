"""One prediction inside the service (``InFlight``) and what front ends see of it.

``InFlight`` holds the machinery: the broadcaster, the runner's job, the pipe, the webhook
tracker and how the runner said it ended. It never leaves the service. Front ends (HTTP, the
widget, the kernel, the console) get a ``PredictionRef``: the prediction's state to read, its
failure traceback as text, ``on_done`` and ``subscribe``. So the cancel policy of spec §11.4
(the last counting stream leaving cancels a stream-owned prediction, and so does a counting
stream that lags) lives here, once, instead of in each front end.

Threads: everything here runs on the serving loop's thread (see ``facade.py``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from nbcog.core.broadcaster import Broadcaster, BroadcasterStats, Subscription
from nbcog.core.events import Event
from nbcog.core.prediction import Prediction
from nbcog.runner.pipe import EventPipe
from nbcog.runner.webhooks import WebhookTracker
from nbcog.runner.worker import Finished, Job, Runner
from nbcog.service.request import Mode
from nbcog.service.state import PredictionState


@dataclass(eq=False)
class InFlight:
    """One prediction between creation and its terminal state (private to the service)."""

    prediction: Prediction
    broadcaster: Broadcaster
    job: Job
    mode: Mode
    pipe: EventPipe[Event | Finished]
    tracker: WebhookTracker | None = None
    counted_streams: set[PredictionStream] = field(default_factory=set)
    finished: Finished | None = None
    completed: Event | None = None
    done_callbacks: list[Callable[[PredictionRef], None]] = field(default_factory=list)
    _ref: weakref.ref[PredictionRef] | None = field(default=None, init=False, repr=False)

    @property
    def ref(self) -> PredictionRef:
        """The front ends' handle: the same object for as long as anyone holds it.

        Held weakly. The ref holds its entry; a strong link back would make every entry a
        reference cycle, kept (outputs, replay history) until a full garbage collection.
        """
        held = self._ref() if self._ref is not None else None
        if held is None:
            held = PredictionRef(self)
            self._ref = weakref.ref(held)
        return held

    def run_done_callbacks(self) -> None:
        """The prediction is terminal: tell everyone who asked, once."""
        callbacks, self.done_callbacks = self.done_callbacks, []
        for callback in callbacks:
            callback(self.ref)

    def stream_left(self, stream: PredictionStream) -> None:
        """A counting stream stopped counting; the last one cancels an SSE-created prediction."""
        if stream not in self.counted_streams:
            return
        self.counted_streams.discard(stream)
        if not self.counted_streams and self.mode is Mode.SSE and not self.prediction.is_terminal:
            Runner.cancel(self.job)


class PredictionRef:
    """A front end's read-only handle on one prediction, in flight or just finished.

    ``prediction`` is the state to read (status, output, logs, metrics, snapshots): front ends
    never change it, only the service's delivery does. The same ref is handed out for the
    prediction's whole life (``create``, ``get``, listeners, ``on_done``).
    """

    __slots__ = ("__weakref__", "_entry")

    def __init__(self, entry: InFlight) -> None:
        self._entry = entry

    @property
    def id(self) -> str:
        """The prediction's id."""
        return self._entry.prediction.id

    @property
    def prediction(self) -> PredictionState:
        """The prediction's state, read-only (the service alone changes it)."""
        return self._entry.prediction

    @property
    def is_terminal(self) -> bool:
        """The prediction has ended (succeeded, failed or canceled)."""
        return self._entry.prediction.is_terminal

    @property
    def completed(self) -> Event | None:
        """The ``completed`` event once published (its JSON is a succeeded sync body)."""
        return self._entry.completed

    @property
    def traceback(self) -> str | None:
        """A failure's traceback from the user's first frame, once ended (None otherwise)."""
        finished = self._entry.finished
        return finished.traceback if finished is not None else None

    def on_done(self, callback: Callable[[PredictionRef], None]) -> None:
        """Call ``callback(ref)`` on the loop thread once the prediction is terminal (now if)."""
        if self._entry.prediction.is_terminal:
            callback(self)
        else:
            self._entry.done_callbacks.append(callback)

    def subscribe(
        self,
        wake: Callable[[], None],
        *,
        replay: bool = True,
        counts_for_cancel: bool = False,
        queue_capacity: int | None = None,
    ) -> PredictionStream:
        """Follow the prediction's events: ``wake()`` fires when ``take()`` has something.

        ``replay`` starts with the history kept so far (spec §11.2). A stream that
        ``counts_for_cancel`` (an HTTP SSE response) stops counting when it is closed *or* the
        moment it lags (its stream can only end with the lag error then, however long its
        client takes to read up to it), and when the last counting stream of a prediction
        created in SSE mode stops counting, the prediction is canceled (spec §11.4): a creator
        that never reads cancels at once instead of holding the slot. In-process followers
        (widget, kernel) never count.

        Raises:
            TooManySubscribers: the prediction has its maximum of subscribers already.
        """
        entry = self._entry
        if not counts_for_cancel:
            subscription = entry.broadcaster.subscribe(
                wake, replay=replay, queue_capacity=queue_capacity
            )
            return PredictionStream(entry, subscription, counted=False)
        streams: list[PredictionStream] = []

        def on_wake() -> None:
            wake()
            if streams and streams[0].lagged:
                entry.stream_left(streams[0])

        subscription = entry.broadcaster.subscribe(
            on_wake, replay=replay, queue_capacity=queue_capacity
        )
        stream = PredictionStream(entry, subscription, counted=True)
        streams.append(stream)
        entry.counted_streams.add(stream)
        return stream

    def stream_stats(self) -> BroadcasterStats:
        """How full the prediction's event buffers are (for diagnostics and tests)."""
        return self._entry.broadcaster.stats()


class PredictionStream:
    """One follower's cursor into a prediction's events (from ``PredictionRef.subscribe``).

    Call ``take()`` right after subscribing (for the replay), then whenever ``wake`` fires.
    Once ``done`` is true nothing more will come: the last event taken ended the stream
    (``completed``, or an ``error`` for truncation or lag).
    """

    __slots__ = ("_counted", "_entry", "_subscription")

    def __init__(self, entry: InFlight, subscription: Subscription, *, counted: bool) -> None:
        self._entry = entry
        self._subscription = subscription
        self._counted = counted

    def take(self) -> list[Event]:
        """Everything pending, in order; a list ending the stream has its end event last."""
        return self._subscription.take()

    @property
    def done(self) -> bool:
        """Nothing more will come."""
        return self._subscription.done

    @property
    def lagged(self) -> bool:
        """This follower fell too far behind: its stream ends with the lag error."""
        return self._subscription.lagged

    def close(self) -> None:
        """Leave (idempotent); a counting stream stops counting, which may cancel."""
        self._subscription.close()
        if self._counted:
            self._entry.stream_left(self)
