"""``PredictionService``: the one front door that HTTP handlers, the CLI and widgets share.

It composes the service's parts, each with one job: ``SetupState`` (setup and health),
``RequestPolicy`` (the spec §6 checks and secret masking), ``Registry`` (ids, in flight,
listeners, the recent ones), ``Delivery`` (events from the runner) and, per prediction, an
``InFlight`` whose ``PredictionRef`` is all a front end ever gets. It knows nothing of HTTP.

Threading rule (tornado's): every method here runs on the serving loop's thread, and so do
every ``Prediction`` and ``Broadcaster`` it owns. Worker threads never touch them: they put
events on an ``EventPipe``, which hands them to ``Delivery`` on this thread.
"""

from __future__ import annotations

import concurrent.futures
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from nbcog.core.broadcaster import Broadcaster
from nbcog.core.events import Event
from nbcog.core.prediction import Prediction, Status
from nbcog.core.schema import PredictorSchema
from nbcog.runner.cog_adapter import HandlerInfo
from nbcog.runner.pipe import EventPipe
from nbcog.runner.runtime import Runtime
from nbcog.runner.webhooks import WebhookSender
from nbcog.runner.worker import Finished, Job, Runner
from nbcog.service.delivery import Delivery
from nbcog.service.inflight import InFlight, PredictionRef
from nbcog.service.policy import RequestPolicy
from nbcog.service.registry import Listener, Observer, Registry
from nbcog.service.request import CreateRequest, Loop, Mode
from nbcog.service.settings import history_capacity_from_env, recent_bytes_from_env
from nbcog.service.setup import Health, SetupState
from nbcog.service.state import PredictionState


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
        self._setup = SetupState(runtime, loop)
        self._policy = RequestPolicy(runtime, self._setup)
        self._registry = Registry(recent_bytes_from_env() if recent_bytes is None else recent_bytes)
        self._delivery = Delivery(self._registry, loop)
        self._closed = False

    @property
    def loop(self) -> Loop:
        """The serving loop that owns this service (widgets schedule their timers on it)."""
        return self._loop

    # -- setup and health ------------------------------------------------------------------

    @property
    def health(self) -> Health:
        """Where setup is (the health-check's status before BUSY/UNHEALTHY are applied)."""
        return self._setup.health

    @property
    def openapi(self) -> Mapping[str, Any] | None:
        """The OpenAPI document once setup succeeded (spec §5), else None."""
        schema = self._setup.schema
        return None if schema is None else schema.openapi

    @property
    def schema(self) -> PredictorSchema | None:
        """What the OpenAPI document says (inputs, outputs) once setup succeeded, else None."""
        return self._setup.schema

    @property
    def is_ready(self) -> bool:
        """Setup succeeded: creates may run."""
        return self._setup.is_ready

    @property
    def streaming(self) -> bool:
        """The predict handler opted in to SSE with ``@streaming``."""
        return self._policy.streaming

    @property
    def has_training(self) -> bool:
        """A training handler is served (``/trainings`` routes exist)."""
        return self.runtime.serves_training

    def start(self) -> None:
        """Begin loading and ``setup()`` on a setup thread; returns at once."""
        self._setup.start()

    def on_setup_done(self, callback: Callable[[Health], None]) -> None:
        """Call ``callback(health)`` on the loop thread once setup has ended (now if it has)."""
        self._setup.on_done(callback)

    def setup_view(self) -> dict[str, Any] | None:
        """The ``setup`` object of the health-check, None before setup starts."""
        return self._setup.setup_view()

    def health_body(self, user_error: str | None = None) -> dict[str, Any]:
        """The health-check body; ``user_error`` comes from the user ``healthcheck()``."""
        return self._setup.health_body(busy=self._registry.busy, user_error=user_error)

    def user_healthcheck(self) -> concurrent.futures.Future[Any] | None:
        """Start the predictor's ``healthcheck()`` on its thread; None when it has none."""
        return self.runtime.healthcheck()

    # -- the predictions -------------------------------------------------------------------

    def add_listener(self, callback: Listener) -> Callable[[], None]:
        """Call ``callback(kind, ref)`` on the loop thread for every prediction.

        ``kind`` is ``"created"`` (HTTP and in-process creates alike) or ``"finished"`` (once,
        after the terminal event was published). A listener that raises is logged, never
        allowed to break a prediction. Returns a function that removes the listener.
        """
        return self._registry.add_listener(callback)

    def observe_events(self, callback: Observer) -> None:
        """Call ``callback(ref, batch)`` on the loop thread with every batch it publishes.

        For a process-wide observer such as the CLI's terminal, which must see every log
        line without being one of a prediction's (capped, HTTP-visible) stream subscribers.
        The ``completed`` event is not included: listen for ``"finished"`` instead. It must
        be quick and must not raise: it runs in the delivery loop.
        """
        self._registry.observers.append(callback)

    def get(self, prediction_id: str) -> PredictionRef | None:
        """The in-flight prediction with this id (terminal ones are forgotten at once)."""
        entry = self._registry.get(prediction_id)
        return None if entry is None else entry.ref

    def inflight(self) -> list[PredictionRef]:
        """Predictions running now, oldest first."""
        return [entry.ref for entry in self._registry.inflight()]

    @property
    def recent(self) -> Sequence[PredictionState]:
        """Finished predictions kept for status displays, newest first (see ``Registry``)."""
        return self._registry.recent

    @property
    def recent_retained_bytes(self) -> int:
        """What ``recent`` retains together (at most its byte budget)."""
        return self._registry.recent_retained_bytes

    # -- creates ---------------------------------------------------------------------------

    def create_or_attach(
        self, request: CreateRequest, *, mode: Mode, training: bool, put_id: str | None
    ) -> tuple[PredictionRef, bool]:
        """A create request from a front end, checked in coglet's order (``policy.py``).

        A PUT of an id in flight attaches to it instead. Returns the prediction and whether
        it was attached to (True) or created (False).

        Raises:
            NbcogError: TrainingStreamingNotSupported, InputValidationError, NotReady,
                StreamingNotSupported, AtCapacity.
        """
        self._policy.check_request(request, mode, training=training, put_id=put_id)
        attached = self._registry.get(put_id) if put_id is not None else None
        if attached is not None:
            self._policy.check_attach(mode)
            return attached.ref, True
        return self.create(request, mode=mode, training=training, put_id=put_id), False

    def create(
        self,
        request: CreateRequest,
        *,
        mode: Mode,
        training: bool = False,
        put_id: str | None = None,
    ) -> PredictionRef:
        """Check readiness, opt-in, input and capacity (spec §6 steps 4-7), then start.

        Raises:
            NotReady, StreamingNotSupported, InputValidationError, AtCapacity.
        """
        self._policy.check_create(mode, closed=self._closed)
        values = self._policy.validate(request, training=training)
        prediction_id = put_id or request.id or self._registry.new_id()
        self._policy.check_capacity(
            id_in_flight=self._registry.get(prediction_id) is not None, busy=self._registry.busy
        )
        handler = self._handler(training)
        return self._start(prediction_id, handler, values, request, mode, training).ref

    def _handler(self, training: bool) -> HandlerInfo:
        handler = self.runtime.train if training else self.runtime.predict
        if handler is None:
            # A training-only server still answers /predictions with its handler (and vice
            # versa), as coglet does with its single handler.
            handler = self.runtime.predict or self.runtime.train
        assert handler is not None  # setup succeeded, so there is one
        return handler

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
            input=self._policy.echo_input(values, training=training),
            kind="training" if training else "prediction",
        )
        broadcaster = Broadcaster(self.history_capacity)
        # The pipe reaches its entry through a weak reference. The entry holds the pipe, and a
        # strong cycle would keep each finished prediction (outputs, replay history) alive
        # until the next full garbage collection, which a long stream can put off for many
        # predictions: RSS would grow with every long stream.
        entry_ref: list[weakref.ref[InFlight]] = []
        deliver_to = self._delivery.deliver_to
        pipe: EventPipe[Event | Finished] = EventPipe(
            self._loop.call_soon_threadsafe, lambda batch: deliver_to(entry_ref[0], batch)
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
        self._registry.add(entry)
        runner = self.runtime.runner
        assert runner is not None
        runner.start(job)
        self._registry.notify("created", entry)
        return entry

    # -- cancel and close ------------------------------------------------------------------

    def cancel(self, prediction_id: str) -> bool:
        """Cancel an in-flight prediction; False when the id is unknown or finished."""
        entry = self._registry.get(prediction_id)
        if entry is None:
            return False
        Runner.cancel(entry.job)
        return True

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
        self._setup.stop()
        for entry in self._registry.inflight():
            Runner.cancel(entry.job)
            self._delivery.deliver(entry, entry.pipe.close())
            if not entry.prediction.is_terminal:
                self._delivery.finish(entry, Finished(Status.CANCELED))
        self.runtime.close()
