"""The prediction service: the one front door that HTTP handlers, the CLI and widgets share.

It owns setup state, slots, the in-flight registry (id -> prediction, broadcaster, job) and
the rules of spec §6-§8, §11.4, §14 and §16, and nothing about HTTP.

Threading rule (tornado's): every method here runs on the serving loop's thread, and so do
every ``Prediction`` and ``Broadcaster`` it owns. Worker threads never touch them: they put
events on an ``EventPipe``, which hands them to ``_deliver`` on this thread.
"""

from __future__ import annotations

import concurrent.futures
import enum
import logging
import os
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from nbcog.core.broadcaster import DEFAULT_HISTORY_CAPACITY, Broadcaster, Subscription
from nbcog.core.errors import (
    AtCapacity,
    InputValidationError,
    NotReady,
    StreamingNotSupported,
    describe_exception,
)
from nbcog.core.events import Event
from nbcog.core.prediction import Prediction, Status
from nbcog.core.validation import inline_refs, validate_input
from nbcog.core.versions import versions
from nbcog.runner.cog_adapter import HandlerInfo
from nbcog.runner.pipe import EventPipe
from nbcog.runner.runtime import Runtime, SetupFailed
from nbcog.runner.webhooks import WebhookSender, WebhookTracker
from nbcog.runner.worker import Finished, Job, Runner

log = logging.getLogger("nbcog")

SECRET_MASK = "**********"  # noqa: S105 - the mask shown instead of a secret
RECENT_LIMIT = 100
DEFAULT_RECENT_BYTES = 64 * 1024 * 1024
"""Default memory budget of the finished predictions kept for status displays."""
RECENT_BYTES_ENV = "NBCOG_RECENT_BYTES"


class Loop(Protocol):
    """What the service needs from an event loop (an ``asyncio`` loop has all three)."""

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: object) -> object: ...

    def call_later(
        self, delay: float, callback: Callable[..., object], *args: object
    ) -> object: ...

    def time(self) -> float: ...


class Health(str, enum.Enum):
    """The ``status`` of ``GET /health-check`` (spec §4).

    No ``DEFUNCT``: coglet reserves it and never sends it, and neither does nbcog.
    """

    STARTING = "STARTING"
    READY = "READY"
    BUSY = "BUSY"
    UNHEALTHY = "UNHEALTHY"
    SETUP_FAILED = "SETUP_FAILED"


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


@dataclass(eq=False)
class InFlight:
    """One prediction between creation and its terminal state."""

    prediction: Prediction
    broadcaster: Broadcaster
    job: Job
    mode: Mode
    pipe: EventPipe[Event | Finished]
    tracker: WebhookTracker | None = None
    http_streams: set[Subscription] = field(default_factory=set)
    finished: Finished | None = None
    completed: Event | None = None
    done_callbacks: list[Callable[[InFlight], None]] = field(default_factory=list)

    def on_done(self, callback: Callable[[InFlight], None]) -> None:
        """Call ``callback(self)`` on the loop thread once the prediction is terminal."""
        if self.prediction.is_terminal:
            callback(self)
        else:
            self.done_callbacks.append(callback)


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


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat()


class PredictionService:
    """Setup, health, creates, attaches and cancels for one served predictor.

    Args:
        runtime: the loaded-or-loading predictor.
        loop: the serving loop (thread-safe scheduling, timers).
        webhooks: the webhook sender shared by all predictions.
        upload_url: where file outputs are PUT (``--upload-url``); None gives data URLs.
        history_capacity: events kept per prediction for late SSE subscribers.
        recent_bytes: memory budget (``Prediction.retained_bytes``) of the finished
            predictions kept in ``recent``, besides the ``RECENT_LIMIT`` count; default
            from ``NBCOG_RECENT_BYTES``, else 64 MiB.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        loop: Loop,
        webhooks: WebhookSender,
        upload_url: str | None = None,
        history_capacity: int | None = None,
        recent_bytes: int | None = None,
    ) -> None:
        self.runtime = runtime
        self._loop = loop
        self._webhooks = webhooks
        self.upload_url = upload_url
        self.history_capacity = (
            history_capacity_from_env() if history_capacity is None else history_capacity
        )
        self.health = Health.STARTING
        self.setup_started_at: str | None = None
        self.setup_completed_at: str | None = None
        self.openapi: dict[str, Any] | None = None
        self._inflight: dict[str, InFlight] = {}
        self.recent: deque[Prediction] = deque()
        self.recent_bytes = recent_bytes_from_env() if recent_bytes is None else recent_bytes
        self._recent_sizes: deque[int] = deque()  # retained_bytes of each, same order
        self._recent_total = 0
        self._busy = 0
        self._input_schemas: dict[bool, dict[str, Any]] = {}
        self._last_id = 0
        self._closed = False
        self._setup_callbacks: list[Callable[[Health], None]] = []
        self._listeners: list[Callable[[str, InFlight], None]] = []
        self._observers: list[Callable[[InFlight, list[Event]], None]] = []

    @property
    def loop(self) -> Loop:
        """The serving loop that owns this service (widgets schedule their timers on it)."""
        return self._loop

    def add_listener(self, callback: Callable[[str, InFlight], None]) -> Callable[[], None]:
        """Call ``callback(kind, entry)`` on the loop thread for every prediction.

        ``kind`` is ``"created"`` (HTTP and in-process creates alike) or ``"finished"`` (once,
        after the terminal event was published). A listener that raises is logged, never
        allowed to break a prediction. Returns a function that removes the listener.
        """
        self._listeners.append(callback)

        def remove() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return remove

    def observe_events(self, callback: Callable[[InFlight, list[Event]], None]) -> None:
        """Call ``callback(entry, batch)`` on the loop thread with every batch it publishes.

        For a process-wide observer such as the CLI's terminal, which must see every log
        line without being one of a prediction's (capped, HTTP-visible) stream subscribers.
        The ``completed`` event is not included: listen for ``"finished"`` instead. It must
        be quick and must not raise: it runs in the delivery loop.
        """
        self._observers.append(callback)

    def _notify(self, kind: str, entry: InFlight) -> None:
        for listener in list(self._listeners):
            try:
                listener(kind, entry)
            except Exception:
                log.exception("nbcog prediction listener failed")

    def on_setup_done(self, callback: Callable[[Health], None]) -> None:
        """Call ``callback(health)`` on the loop thread once setup has ended (now if it has)."""
        if self.health is Health.STARTING:
            self._setup_callbacks.append(callback)
        else:
            callback(self.health)

    def _setup_ended(self, health: Health) -> None:
        self.health = health
        callbacks, self._setup_callbacks = self._setup_callbacks, []
        for callback in callbacks:
            callback(health)

    # -- setup -------------------------------------------------------------------------

    def start(self) -> None:
        """Begin loading and ``setup()`` on a setup thread; returns at once."""
        self.setup_started_at = _utc_now()
        future = self.runtime.start_setup()
        future.add_done_callback(lambda f: self._loop.call_soon_threadsafe(self._on_setup_done, f))
        timeout = setup_timeout_from_env()
        if timeout is not None:
            self._loop.call_later(timeout, self._on_setup_timeout)

    def _on_setup_done(self, future: concurrent.futures.Future[None]) -> None:
        if self.health is not Health.STARTING or self._closed:
            return  # timed out already, or stopped: a late setup is ignored (spec §17)
        self.setup_completed_at = _utc_now()
        exc = future.exception()
        if exc is not None:
            if not isinstance(exc, SetupFailed):
                log.error("nbcog setup crashed", exc_info=exc)
            self._setup_ended(Health.SETUP_FAILED)
            return
        predict, train = self.runtime.predict, self.runtime.train
        self.openapi = self.runtime.openapi()
        components = self.openapi["components"]["schemas"]
        if predict is not None:
            self._input_schemas[False] = inline_refs(predict.schema.input, components)
        if train is not None:
            self._input_schemas[True] = inline_refs(train.schema.input, components)
        self._setup_ended(Health.READY)

    def _on_setup_timeout(self) -> None:
        if self.health is Health.STARTING:
            self.setup_completed_at = _utc_now()
            self.runtime._append_log("stderr", "worker setup timed out\n")
            self._setup_ended(Health.SETUP_FAILED)

    @property
    def is_ready(self) -> bool:
        """Setup succeeded: creates may run."""
        return self.health in (Health.READY, Health.BUSY, Health.UNHEALTHY)

    @property
    def streaming(self) -> bool:
        """The predict handler opted in to SSE with ``@streaming``."""
        predict = self.runtime.predict
        return predict is not None and predict.streaming

    @property
    def has_training(self) -> bool:
        """A training handler is served (``/trainings`` routes exist)."""
        return self.runtime.train is not None or self.runtime._train_ref is not None

    # -- health ------------------------------------------------------------------------

    def setup_view(self) -> dict[str, Any] | None:
        """The ``setup`` object of the health-check, None before setup starts."""
        if self.setup_started_at is None:
            return None
        status = {
            Health.STARTING: "starting",
            Health.SETUP_FAILED: "failed",
        }.get(self.health, "succeeded")
        view: dict[str, Any] = {"started_at": self.setup_started_at, "status": status}
        if self.setup_completed_at is not None:
            view["completed_at"] = self.setup_completed_at
        logs = self.runtime.setup_logs
        if logs:
            view["logs"] = logs
        return view

    def health_body(self, user_error: str | None = None) -> dict[str, Any]:
        """The health-check body; ``user_error`` comes from the user ``healthcheck()``."""
        status = self.health
        if status is Health.READY and self._busy >= self.runtime.slots:
            status = Health.BUSY
        if user_error is not None and self.is_ready:
            status = Health.UNHEALTHY
        body: dict[str, Any] = {"status": status.value, "version": versions()}
        setup = self.setup_view()
        if setup is not None:
            body["setup"] = setup
        if status is Health.UNHEALTHY:
            body["user_healthcheck_error"] = user_error
        return body

    def user_healthcheck(self) -> concurrent.futures.Future[Any] | None:
        """Start the predictor's ``healthcheck()`` on its thread; None when it has none."""
        return self.runtime.healthcheck()

    # -- creates -----------------------------------------------------------------------

    def get(self, prediction_id: str) -> InFlight | None:
        """The in-flight prediction with this id (terminal ones are forgotten at once)."""
        return self._inflight.get(prediction_id)

    def new_id(self) -> str:
        """``pred_`` + lowercase hex of Unix time in ns, strictly increasing (so unique)."""
        now = max(time.time_ns(), self._last_id + 1)
        self._last_id = now
        return f"pred_{now:x}"

    def validate(self, request: CreateRequest, *, training: bool) -> dict[str, Any]:
        """Validate the input against ``Input``/``TrainingInput`` (spec §7).

        Raises:
            InputValidationError: with every problem, in coglet's order.
        """
        schema = self._input_schemas.get(training) or self._input_schemas[False]
        payload = {} if request.input is None else request.input
        values, errors = validate_input(schema, payload)
        if errors:
            raise InputValidationError(errors)
        return values

    def create(
        self,
        request: CreateRequest,
        *,
        mode: Mode,
        training: bool = False,
        put_id: str | None = None,
    ) -> InFlight:
        """Check readiness, opt-in, input and capacity (spec §6 order 4-7), then start.

        Attaching to an in-flight PUT id is the caller's step 3, before this.

        Raises:
            NotReady, StreamingNotSupported, InputValidationError, AtCapacity.
        """
        if not self.is_ready or self._closed:
            raise NotReady
        if mode is Mode.SSE and not self.streaming:
            raise StreamingNotSupported
        values = self.validate(request, training=training)
        prediction_id = put_id or request.id or self.new_id()
        if prediction_id in self._inflight or self._busy >= self.runtime.slots:
            raise AtCapacity
        handler = self._handler(training)
        return self._start(prediction_id, handler, values, request, mode, training)

    def _handler(self, training: bool) -> HandlerInfo:
        handler = self.runtime.train if training else self.runtime.predict
        if handler is None:
            # A training-only server still answers /predictions with its handler (and vice
            # versa), as coglet does with its single handler.
            handler = self.runtime.predict or self.runtime.train
        assert handler is not None  # setup succeeded, so there is one
        return handler

    def _echo_input(self, values: dict[str, Any], training: bool) -> dict[str, Any]:
        properties = self._input_schemas[training if training in self._input_schemas else False]
        props = properties.get("properties", {})
        return {
            key: SECRET_MASK
            if isinstance(value, str) and props.get(key, {}).get("x-cog-secret")
            else value
            for key, value in values.items()
        }

    def _start(
        self,
        prediction_id: str,
        handler: HandlerInfo,
        values: dict[str, Any],
        request: CreateRequest,
        mode: Mode,
        training: bool,
    ) -> InFlight:
        prediction = Prediction(
            prediction_id,
            created_at=self._loop.time(),
            input=self._echo_input(values, training),
            kind="training" if training else "prediction",
        )
        broadcaster = Broadcaster(self.history_capacity)
        # The pipe reaches its entry through a weak reference. The entry holds the pipe, and a
        # strong cycle would keep each finished prediction (outputs, replay history) alive
        # until the next full garbage collection, which a long stream can put off for many
        # predictions: RSS would grow with every long stream.
        entry_ref: list[weakref.ref[InFlight]] = []
        pipe: EventPipe[Event | Finished] = EventPipe(
            self._loop.call_soon_threadsafe, lambda batch: self._deliver_to(entry_ref[0], batch)
        )
        job = Job(
            prediction_id,
            handler,
            values,
            pipe.put,
            context=dict(request.context),
            training=training,
            upload_url=self.upload_url,
        )
        tracker = None
        if request.webhook:
            tracker = self._webhooks.track(
                request.webhook, request.webhook_events_filter, request.trace_headers
            )
        entry = InFlight(prediction, broadcaster, job, mode, pipe, tracker)
        entry_ref.append(weakref.ref(entry))
        self._inflight[prediction_id] = entry
        self._busy += 1
        runner = self.runtime.runner
        assert runner is not None
        runner.start(job)
        self._notify("created", entry)
        return entry

    # -- events from the runner (loop thread) ------------------------------------------

    def _deliver_to(self, ref: weakref.ref[InFlight], batch: list[Event | Finished]) -> None:
        """The pipe's callback: it holds its entry weakly (see ``_start``).

        An error while applying or publishing (a bug, or a value that cannot be encoded)
        ends the prediction ``failed`` here, so its slot and its waiters are never left
        hanging; the rest of the batch is dropped.
        """
        entry = ref()
        if entry is None:  # finished and forgotten: ignored, like any late event
            return
        try:
            self._deliver(entry, batch)
        except Exception as exc:
            log.exception("nbcog could not deliver events of %s", entry.prediction.id)
            Runner.cancel(entry.job)  # stop the predictor: nothing it produces can be sent
            if self._inflight.get(entry.prediction.id) is entry:
                self._inflight.pop(entry.prediction.id)
                self._busy -= 1
            if not entry.prediction.is_terminal:
                error = f"Prediction failed: internal error: {describe_exception(exc)}"
                self._finish(entry, Finished(Status.FAILED, error))

    def _deliver(self, entry: InFlight, batch: list[Event | Finished]) -> None:
        # The hot loop of a fast stream. Nothing in it can end the prediction (only _finish
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
        for observer in self._observers:
            observer(entry, published)
        if finished is not None:
            self._finish(entry, finished)

    def _finish(self, entry: InFlight, finished: Finished) -> None:
        # The slot is free before anyone hears of the end, so a client that sends its next
        # request right after the response never sees a spurious 409 (spec §21.1).
        if self._inflight.pop(entry.prediction.id, None) is entry:
            self._busy -= 1
        entry.finished = finished
        completed = entry.prediction.finish(
            finished.status,
            completed_at=self._loop.time(),
            error=finished.error,
            output_is_array=finished.output_is_array,
        )
        self._remember(entry.prediction)
        if completed is None:
            return
        entry.completed = completed
        entry.broadcaster.publish([completed])
        if entry.tracker is not None:
            entry.tracker.observe(completed, entry.prediction)
        callbacks, entry.done_callbacks = entry.done_callbacks, []
        for callback in callbacks:
            callback(entry)
        self._notify("finished", entry)

    def _remember(self, prediction: Prediction) -> None:
        """Keep finished predictions for status displays: the newest ``RECENT_LIMIT`` that
        fit in ``recent_bytes`` together, oldest evicted first.

        Without the byte budget, the last 100 predictions of a 50 MiB echo each would pin
        10 GB in a kernel that holds the user's model too. A prediction bigger than the whole
        budget is not kept at all. Nothing else depends on ``recent``: a finished id is
        unknown to GET, PUT and cancel whether or not it is still listed here (coglet's rule).
        """
        size = prediction.retained_bytes()
        if size > self.recent_bytes:
            return  # keeping it would evict every other one and still not fit
        self.recent.appendleft(prediction)
        self._recent_sizes.appendleft(size)
        self._recent_total += size
        while self.recent and (
            self._recent_total > self.recent_bytes or len(self.recent) > RECENT_LIMIT
        ):
            self.recent.pop()
            self._recent_total -= self._recent_sizes.pop()

    # -- subscribers and cancel --------------------------------------------------------

    def subscribe_http(self, entry: InFlight, wake: Callable[[], None]) -> Subscription:
        """An HTTP SSE subscriber: it counts for cancel-on-disconnect (spec §11.4).

        A subscriber stops counting when it leaves *or* the moment it lags (its stream can
        only end with the lag error then, however long its client takes to read up to it):
        a creator that never reads cancels its prediction at once instead of holding the
        slot until the predictor is done.
        """
        subscribed: list[Subscription] = []

        def on_wake() -> None:
            wake()
            if subscribed and subscribed[0].lagged:
                self._stream_left(entry, subscribed[0])

        subscription = entry.broadcaster.subscribe(on_wake)
        subscribed.append(subscription)
        entry.http_streams.add(subscription)
        return subscription

    def unsubscribe_http(self, entry: InFlight, subscription: Subscription) -> None:
        """An HTTP SSE subscriber left; the last one leaving cancels a stream-owned prediction."""
        subscription.close()
        self._stream_left(entry, subscription)

    def _stream_left(self, entry: InFlight, subscription: Subscription) -> None:
        if subscription not in entry.http_streams:
            return
        entry.http_streams.discard(subscription)
        if not entry.http_streams and entry.mode is Mode.SSE and not entry.prediction.is_terminal:
            self.cancel(entry.prediction.id)

    def cancel(self, prediction_id: str) -> bool:
        """Cancel an in-flight prediction; False when the id is unknown or finished."""
        entry = self._inflight.get(prediction_id)
        if entry is None:
            return False
        Runner.cancel(entry.job)
        return True

    def inflight(self) -> list[InFlight]:
        """Predictions running now, oldest first."""
        return list(self._inflight.values())

    def close(self) -> None:
        """Cancel and end every prediction in flight, then stop the runtime (idempotent).

        Each one ends here, as ``canceled``, rather than whenever its thread notices: SSE
        subscribers, sync waiters, the widget and webhooks hear ``completed`` before the
        server goes, and a predictor stuck in a blocking call cannot hold the stop up. Events
        it had already produced are delivered first, in order; anything later is dropped.
        """
        if self._closed:
            return
        self._closed = True
        for entry in list(self._inflight.values()):
            Runner.cancel(entry.job)
            self._deliver(entry, entry.pipe.close())
            if not entry.prediction.is_terminal:
                self._finish(entry, Finished(Status.CANCELED))
        self.runtime.close()
