"""``PredictionView``: one prediction, live, fed by the same events as the SSE streams.

The view is an in-process subscriber (spec §19): it never goes through HTTP, so it works
behind JupyterHub/Binder proxies, in VS Code and in Colab, and it never counts for
cancel-on-disconnect (only an HTTP SSE response's stream does).

Cost (issue 5): events are folded into a ``ViewState`` as they arrive; a timer on the serving
loop sends what was added since the last send, as one anywidget custom message, at most every
``FLUSH_INTERVAL`` seconds. Bytes to the frontend therefore grow linearly with the output. The
model opens with the state folded so far in its synced traits (labelled ``seq``), and the final
state is written to them once, when the prediction ends. The frontend folds deltas into one
store per model from its creation on (``view.js``), so a view displayed by a cell that is still
running (``%cog predict``) draws live without asking the kernel anything: the kernel answers no
comm message while that cell runs. Only a model restored later (a page reload) asks for the
full state (``{"kind": "sync"}``) and applies the deltas after it.

Threads: build, close and read a view on the serving loop's thread (a notebook cell runs
there). Messages from the frontend may arrive on another thread; they are handed to the loop
with ``call_soon_threadsafe``. Every message to the frontend is sent from the loop thread, in
the context the view was created in (see ``context.py`` for why that matters to the kernel).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from nbcog.core import events
from nbcog.core import snippets as api_snippets
from nbcog.core.errors import TooManySubscribers
from nbcog.service import PredictionRef, PredictionService, PredictionState, PredictionStream
from nbcog.widget.context import CreationContext
from nbcog.widget.render import view_html, view_text
from nbcog.widget.state import ViewState

DEFAULT_BASE_URL = "http://localhost:5000"

FLUSH_INTERVAL = 0.05
"""Seconds between two updates to the frontend: at most 20 per second."""

WIDGET_QUEUE_CAPACITY = 1_000_000
"""Events a view may have pending before it is lagged. The view drains its queue on every loop
turn, so this only matters when the loop is starved; a lagged view says so and reloads."""

FINAL_TRAITS = (
    "status",
    "output_text",
    "output_items",
    "logs",
    "metrics",
    "metric_modes",
    "error",
    "traceback",
    "timeline",
    "timeline_dropped",
    "notices",
    "output_count",
)

_ASSETS = Path(__file__).parent


def target_of(
    service: PredictionService, base_url: str | None, token: str | None, training: bool
) -> api_snippets.Target:
    """Where the view's snippets send a prediction like this one."""
    return api_snippets.Target(
        base_url or DEFAULT_BASE_URL,
        token=token,
        streaming=service.streaming,
        training=training,
        secrets=service.schema.secret_inputs() if service.schema is not None else (),
    )


class PredictionView(anywidget.AnyWidget):
    """A live view of one prediction: status, time, output, logs, metrics, errors, cancel.

    Args:
        target: an in-flight prediction (``service.create(...)``, or a listener's entry), or a
            finished ``Prediction`` (e.g. from ``service.recent``) to show statically.
        service: the service that owns it (its loop, cancel, output schema).
        base_url: the server's URL, for "copy as curl" and the other snippets.
        token: the server's bearer token, written into the snippets (None: open server).
        queue_capacity: the broadcaster queue bound for this subscriber.

    The synced traits hold the state at creation, then the final state; in between the
    frontend is fed with deltas numbered after ``seq``.
    """

    _esm = (_ASSETS / "view.js").read_text()
    _css = (_ASSETS / "view.css").read_text()

    prediction_id = traitlets.Unicode("").tag(sync=True)
    kind = traitlets.Unicode("prediction").tag(sync=True)
    created_ms = traitlets.Float(0.0).tag(sync=True)
    completed_ms = traitlets.Float(None, allow_none=True).tag(sync=True)
    curl = traitlets.Unicode("").tag(sync=True)
    snippets = traitlets.Dict().tag(sync=True)  # language -> code (nbcog/core/snippets.py)
    done = traitlets.Bool(False).tag(sync=True)
    status = traitlets.Unicode("starting").tag(sync=True)
    output_text = traitlets.Unicode("").tag(sync=True)
    output_items: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    logs = traitlets.Unicode("").tag(sync=True)
    metrics = traitlets.Dict().tag(sync=True)
    metric_modes = traitlets.Dict().tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    traceback = traitlets.Unicode("").tag(sync=True)
    timeline: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    timeline_dropped = traitlets.Int(0).tag(sync=True)
    notices: traitlets.List[str] = traitlets.List().tag(sync=True)
    output_count = traitlets.Int(0).tag(sync=True)
    seq = traitlets.Int(0).tag(sync=True)

    def __init__(
        self,
        target: PredictionRef | PredictionState,
        service: PredictionService,
        *,
        base_url: str | None = None,
        token: str | None = None,
        queue_capacity: int = WIDGET_QUEUE_CAPACITY,
    ) -> None:
        entry = target if isinstance(target, PredictionRef) else None
        prediction = target.prediction if isinstance(target, PredictionRef) else target
        loop = service.loop
        training = prediction.kind == "training"
        self._context = CreationContext()
        self._service = service
        self._loop = loop
        self._entry = entry
        self._prediction = prediction
        schema = service.schema
        self._state = ViewState(schema.output(training=training) if schema is not None else None)
        self._queue_capacity = queue_capacity
        self._subscription: PredictionStream | None = None
        self._drain_scheduled = False
        self._flush_handle: Any = None
        self._last_flush = -math.inf
        self._done_callbacks: list[Callable[[PredictionView], None]] = []
        self._closed = False
        # The model opens with the state so far (the frontend applies deltas from there on,
        # with no round trip to the kernel): fold the replayed history before opening it.
        if entry is None:
            self._state.load(prediction, self._t())
        else:
            self._subscribe(replay=True)
            self._fold()
        self._state.take_delta()  # already in the traits below
        self._state.needs_full = False
        age = loop.time() - prediction.created_at
        created_ms = (time.time() - age) * 1000
        where = target_of(service, base_url, token, training)
        super().__init__(
            prediction_id=prediction.id,
            kind=prediction.kind,
            created_ms=created_ms,
            curl=api_snippets.curl(where, prediction.input, sse=where.sse),
            snippets=api_snippets.all_snippets(where, prediction.input),
            **self._traits_now(created_ms),
        )
        self.on_msg(self._on_frontend_message)
        if self.done:
            self._close_subscription()

    # -- public API ----------------------------------------------------------------------

    def cancel(self) -> bool:
        """Cancel the prediction (as ``POST /predictions/{id}/cancel``); False if not in flight."""
        return self._service.cancel(self.prediction_id)

    def on_done(self, callback: Callable[[PredictionView], None]) -> None:
        """Call ``callback(view)`` on the loop thread once the final state is in the traits.

        The kernel uses it to refresh the output's static ``text/html`` for saved notebooks.
        """
        if self.done:
            callback(self)
        else:
            self._done_callbacks.append(callback)

    def static_html(self) -> str:
        """The current state as self-contained HTML (the saved-notebook fallback)."""
        return view_html(self._meta(), self._state.full())

    def text(self) -> str:
        """The current state as plain text (terminals, text exports): status, output, logs."""
        return view_text(self._meta(), self._state.full())

    def settle(self) -> None:
        """Fold what is queued and, if the prediction has ended, publish the final state now.

        A cell that waited for the prediction calls it before it ends, so the final display
        belongs to the cell and no update arrives after it (nbclient would miss one).
        """
        if self._closed or self.done:
            return
        self._fold()
        if self._state.done:
            if self._flush_handle is not None:
                self._flush_handle.cancel()
            self._context.run(self._flush)

    def _meta(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "prediction_id": self.prediction_id,
            "predict_time": self._prediction.predict_time,
        }

    def close(self) -> None:
        """Stop following the prediction and close the widget (the prediction goes on)."""
        self._closed = True
        self._close_subscription()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        super().close()

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle
        return {**data, "text/plain": self.text(), "text/html": self.static_html()}, metadata

    # -- following the prediction ----------------------------------------------------------

    def _t(self) -> float:
        return self._loop.time() - self._prediction.created_at

    def _subscribe(self, *, replay: bool) -> None:
        assert self._entry is not None
        try:
            self._subscription = self._entry.subscribe(
                self._wake, replay=replay, queue_capacity=self._queue_capacity
            )
        except TooManySubscribers:
            self._state.load(self._prediction, self._t())
            self._state.notice("Too many subscribers to follow this prediction live.", self._t())
            self._schedule_flush()
            return
        self._wake()  # a replayed history is queued without a wake-up

    def _wake(self) -> None:
        if not self._drain_scheduled:
            self._drain_scheduled = True
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._drain_scheduled = False
        self._fold()
        self._schedule_flush()

    def _fold(self) -> None:
        """Fold the events queued for this view into its state."""
        subscription = self._subscription
        if subscription is None or self._closed:
            return
        now = self._t()
        for event in subscription.take():
            if event.name == events.ERROR:
                self._resync(event.data, now)
                break
            self._state.apply(event, now)
            if event.name == events.COMPLETED:
                self._state.set_traceback(self._traceback())
        if subscription.done and self._subscription is subscription:
            self._subscription = None

    def _traceback(self) -> str | None:
        return self._entry.traceback if self._entry is not None else None

    def _resync(self, error: dict[str, Any], now: float) -> None:
        """Lagged or truncated: reload from the prediction, which holds every chunk and log."""
        skipped = error.get("skipped", 0)
        if error.get("error") == events.STREAM_LAGGED:
            text = (
                f"This view fell behind the stream and missed {skipped} events; "
                "it was reloaded from the prediction's state."
            )
        else:
            text = (
                f"The event history was truncated ({skipped} events dropped); "
                "the view was loaded from the prediction's state."
            )
        self._state.load(self._prediction, now)
        if self._prediction.is_terminal:
            self._state.set_traceback(self._traceback())
        self._state.notice(text, now)
        if not self._prediction.is_terminal:
            self._subscribe(replay=False)

    def _close_subscription(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None

    # -- updates to the frontend -----------------------------------------------------------

    def _schedule_flush(self) -> None:
        if self._flush_handle is not None or self._closed:
            return
        delay = max(0.0, self._last_flush + FLUSH_INTERVAL - self._loop.time())
        self._flush_handle = self._loop.call_later(delay, self._context.run, self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        state = self._state
        if state.done:
            state.take_delta()  # all of it goes out in the final traits
            self._publish_final()
        elif state.needs_full:
            self._send_full()
        else:
            delta = state.take_delta()
            if delta is not None:
                self.send({"kind": "delta", **delta})
        # Measured after sending, so two sends are never closer than FLUSH_INTERVAL.
        self._last_flush = self._loop.time()

    def _send_full(self) -> None:
        if self.done or self._closed:
            return  # the traits hold everything; a new view reads them
        delta = self._state.take_delta()
        if delta is not None and not self._state.needs_full:
            self.send({"kind": "delta", **delta})
        self._state.needs_full = False
        self.send({"kind": "full", "state": self._state.full()})

    def _traits_now(self, created_ms: float) -> dict[str, Any]:
        """The state folded so far as trait values (``done`` last: the frontend redraws on it)."""
        full = self._state.full()
        traits = {name: full[name] for name in FINAL_TRAITS}
        predict_time = self._prediction.predict_time
        if self._state.done and predict_time is not None:
            traits["completed_ms"] = created_ms + predict_time * 1000
        traits["seq"] = full["seq"]
        traits["done"] = self._state.done
        return traits

    def _publish_final(self) -> None:
        if self.done:
            return
        with self.hold_sync():
            for name, value in self._traits_now(self.created_ms).items():
                setattr(self, name, value)
        self._close_subscription()
        callbacks, self._done_callbacks = self._done_callbacks, []
        for callback in callbacks:
            callback(self)

    def _on_frontend_message(self, _widget: object, content: Any, _buffers: object) -> None:
        kind = content.get("kind") if isinstance(content, dict) else None
        if kind == "sync":
            self._loop.call_soon_threadsafe(self._context.run, self._send_full)
        elif kind == "cancel":
            self._loop.call_soon_threadsafe(self.cancel)
