"""``ServerMonitor``: every prediction of a service, live, newest first; click one to open it.

It learns of predictions through ``PredictionService.add_listener``, so predictions created over
HTTP from outside the kernel appear as well as those made in the notebook. The list is a small
synced trait, refreshed at most every ``FLUSH_INTERVAL`` on creates and ends (and twice a second
while something runs, to catch ``starting`` -> ``processing``). Opening a row shows a
``PredictionView`` under the list. Build and close it on the serving loop's thread.

A monitor must not look live when its server is gone: ``server_stopped`` freezes it with a
notice, and ``server_reloaded`` makes it follow the new code's service, greying the rows of the
previous code (the kernel calls them from ``%cog stop`` and from serving again).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets
import traitlets

from nbcog.core.errors import NbcogError
from nbcog.core.failures import failure_reason
from nbcog.service import (
    RECENT_LIMIT,
    CreateRequest,
    Mode,
    PredictionRef,
    PredictionService,
    PredictionState,
)
from nbcog.widget.context import CreationContext
from nbcog.widget.form import InputForm
from nbcog.widget.render import monitor_html
from nbcog.widget.view import FLUSH_INTERVAL, PredictionView

POLL_INTERVAL = 0.5
"""Seconds between status checks while predictions are in flight."""

INPUT_PREVIEW = 60
"""Characters of each prediction's input shown in its row."""

_ASSETS = Path(__file__).parent


def _nothing() -> None:
    """The listener remover of a monitor whose server has stopped."""


def _now() -> str:
    return time.strftime("%H:%M:%S")


def secret_inputs(service: PredictionService) -> tuple[str, ...]:
    """The names of the served model's ``Secret`` inputs."""
    return service.schema.secret_inputs() if service.schema is not None else ()


def _preview(values: Mapping[str, Any]) -> str:
    text = json.dumps(values, default=str, ensure_ascii=False)
    return text if len(text) <= INPUT_PREVIEW else text[: INPUT_PREVIEW - 1] + "…"


class PredictionList(anywidget.AnyWidget):
    """The clickable table of the monitor (rows are plain dicts, newest first)."""

    _esm = (_ASSETS / "monitor.js").read_text()
    _css = (_ASSETS / "view.css").read_text()

    title = traitlets.Unicode("").tag(sync=True)
    rows: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)
    notice = traitlets.Unicode("").tag(sync=True)
    """What happened to the server: "" while it serves, else a sentence (stopped, reloaded)."""
    stopped = traitlets.Bool(False).tag(sync=True)


class ServerMonitor(ipywidgets.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """All predictions of ``service``, live; clicking one opens its ``PredictionView``.

    Args:
        service: the service to watch.
        base_url: the server's URL, shown in the title and used by views for "copy as curl".
        token: the server's bearer token, for the views' snippets.
        limit: rows kept (the service itself remembers the last ``RECENT_LIMIT`` finished).
    """

    def __init__(
        self,
        service: PredictionService,
        *,
        base_url: str | None = None,
        limit: int = RECENT_LIMIT,
        token: str | None = None,
    ) -> None:
        self.list = PredictionList(title=f"Predictions served at {base_url or 'this kernel'}")
        self.detail = ipywidgets.VBox()
        super().__init__([self.list, self.detail])
        self._context = CreationContext()
        self._service = service
        self._loop = service.loop
        self._base_url = base_url
        self._token = token
        self._limit = limit
        self._entries: dict[str, PredictionRef] = {
            entry.prediction.id: entry for entry in service.inflight()
        }
        self._created_ms: dict[str, float] = {}
        self._previous: dict[str, PredictionState] = {}  # the rows of code before a reload
        self.view: PredictionView | None = None
        self.form: InputForm | None = None
        self._refresh_handle: Any = None
        self._poll_handle: Any = None
        self._last_refresh = -math.inf
        self._closed = False
        self._remove_listener = service.add_listener(self._on_prediction)
        self.list.on_msg(self._on_frontend_message)
        self._refresh()

    # -- public API ----------------------------------------------------------------------

    def show(self, prediction_id: str) -> PredictionView | None:
        """Show the view of ``prediction_id`` under the list (None if it is unknown)."""
        if self.view is not None and self.view.prediction_id == prediction_id:
            return self.view
        target: PredictionRef | PredictionState | None = self._entries.get(prediction_id)
        if target is None:
            target = next((p for p in self._service.recent if p.id == prediction_id), None)
        if target is None:
            return None
        self._close_detail()
        self.view = PredictionView(
            target, self._service, base_url=self._base_url, token=self._token
        )
        self.detail.children = (self.view,)
        self.list.selected = prediction_id
        return self.view

    def server_reloaded(self, service: PredictionService) -> None:
        """Follow ``service``, the reloaded code's; keep the previous code's rows, greyed."""
        if self._closed:
            return
        self._remove_listener()
        self._previous.update(self._predictions())
        self._service = service
        self._entries = {entry.prediction.id: entry for entry in service.inflight()}
        self._remove_listener = service.add_listener(self._on_prediction)
        note = f"Reloaded at {_now()}: greyed rows ran the previous code."
        self._context.run(self._set_notice, note, False)

    def server_stopped(self) -> None:
        """Freeze the list: the server serves nothing more; say so (the rows stay)."""
        if self._closed:
            return
        self._remove_listener()
        self._remove_listener = _nothing
        note = f"Server stopped at {_now()}: it serves no more predictions."
        self._context.run(self._set_notice, note, True)

    def _set_notice(self, note: str, stopped: bool) -> None:
        with self.list.hold_sync():
            self.list.notice = note
            self.list.stopped = stopped
        self._refresh()

    def _find(self, prediction_id: str) -> PredictionState | None:
        entry = self._entries.get(prediction_id)
        if entry is not None:
            return entry.prediction
        found = next((p for p in self._service.recent if p.id == prediction_id), None)
        return found or self._previous.get(prediction_id)  # re-run on the reloaded code

    def _close_detail(self) -> None:
        for shown in (self.view, self.form):
            if shown is not None:
                shown.close()
        self.view = self.form = None

    def rerun(self, prediction_id: str) -> PredictionView | InputForm | None:
        """Run ``prediction_id`` again with the same inputs and show the new one.

        A prediction with a ``Secret`` input opens the pre-filled form instead, which asks
        for the secret again (the service never stored it). None if the id is unknown.
        """
        prediction = self._find(prediction_id)
        if prediction is None:
            return None
        training = prediction.kind == "training"
        secrets = [name for name in prediction.input if name in secret_inputs(self._service)]
        if secrets:
            note = f"Enter {', '.join(secrets)} again: secret inputs are never stored."
            return self.edit(prediction_id, note)
        try:
            entry = self._service.create(
                CreateRequest(input=dict(prediction.input)), mode=Mode.ASYNC, training=training
            )
        except NbcogError as exc:
            self._close_detail()
            body = exc.body if isinstance(exc.body, dict) else {}
            message = escape(str(body.get("error") or body.get("detail") or exc.body))
            self.detail.children = (ipywidgets.HTML(f"Could not re-run: {message}"),)
            return None
        self._entries[entry.prediction.id] = entry
        self._schedule_refresh()
        return self.show(entry.prediction.id)

    def edit(self, prediction_id: str, note: str = "") -> InputForm | None:
        """Open the input form under the list, filled with ``prediction_id``'s inputs."""
        prediction = self._find(prediction_id)
        if prediction is None:
            return None
        self._close_detail()
        self.form = InputForm(
            self._service,
            base_url=self._base_url,
            token=self._token,
            training=prediction.kind == "training",
        )
        self.form.prefill(
            dict(prediction.input), note or f"Inputs of {prediction_id}: edit, then Run."
        )
        self.detail.children = (self.form,)
        self.list.selected = prediction_id
        return self.form

    def close(self) -> None:
        """Stop watching (predictions go on) and close the list and any open view."""
        self._closed = True
        self._remove_listener()
        for handle in (self._refresh_handle, self._poll_handle):
            if handle is not None:
                handle.cancel()
        self._close_detail()
        self.list.close()
        self.detail.close()
        super().close()

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        text = f"nbcog monitor: {len(self.list.rows)} predictions"
        if self.list.notice:
            text += f" ({self.list.notice})"
        html = monitor_html(self.list.rows, self.list.notice)
        return {**data, "text/plain": text, "text/html": html}, metadata

    # -- keeping the rows current ------------------------------------------------------------

    def _on_prediction(self, kind: str, entry: PredictionRef) -> None:
        self._entries[entry.prediction.id] = entry
        self._schedule_refresh()

    def _schedule_refresh(self) -> None:
        if self._refresh_handle is not None or self._closed:
            return
        delay = max(0.0, self._last_refresh + FLUSH_INTERVAL - self._loop.time())
        self._refresh_handle = self._loop.call_later(delay, self._context.run, self._refresh)

    def _poll(self) -> None:
        self._poll_handle = None
        self._refresh()

    def _refresh(self) -> None:
        self._refresh_handle = None
        if self._closed:
            return
        self._last_refresh = self._loop.time()
        predictions = {**self._previous, **self._predictions()}
        newest = sorted(predictions.values(), key=lambda p: p.created_at, reverse=True)
        newest = newest[: self._limit]
        kept = {p.id for p in newest}
        self._entries = {i: e for i, e in self._entries.items() if i in kept}
        self._created_ms = {i: ms for i, ms in self._created_ms.items() if i in kept}
        self._previous = {i: p for i, p in self._previous.items() if i in kept}
        self.list.rows = [self._row(p) for p in newest]
        if self._poll_handle is None and any(not p.is_terminal for p in newest):
            self._poll_handle = self._loop.call_later(POLL_INTERVAL, self._context.run, self._poll)

    def _predictions(self) -> dict[str, PredictionState]:
        """The current service's predictions: its recent ones and those this monitor saw."""
        predictions = {p.id: p for p in self._service.recent}
        predictions.update((i, e.prediction) for i, e in self._entries.items())
        return predictions

    def _row(self, prediction: PredictionState) -> dict[str, Any]:
        created = self._created_ms.get(prediction.id)
        if created is None:
            age = self._loop.time() - prediction.created_at
            created = self._created_ms[prediction.id] = (time.time() - age) * 1000
        predict_time = prediction.predict_time
        return {
            "id": prediction.id,
            "status": prediction.status.value,
            "kind": prediction.kind,
            "created_ms": created,
            "completed_ms": None if predict_time is None else created + predict_time * 1000,
            "input": _preview(prediction.input),
            "error": failure_reason(prediction.error or ""),  # the status's tooltip
            "previous": prediction.id in self._previous,
        }

    def _on_frontend_message(self, _widget: object, content: Any, _buffers: object) -> None:
        if isinstance(content, dict) and content.get("kind") == "open":
            self._loop.call_soon_threadsafe(self._context.run, self.show, str(content.get("id")))
        actions = {"rerun": self.rerun, "edit": self.edit}
        if isinstance(content, dict) and content.get("kind") in actions:
            action = actions[content["kind"]]
            self._loop.call_soon_threadsafe(self._context.run, action, str(content.get("id")))
