"""The live widgets (nbcog.widget) as the magics and handles show them.

Widgets are built and updated on the serving loop's thread, which owns the service (the
kernel's own thread in kernel-loop mode, the server thread with ``--thread``), but inside the
calling cell's ``contextvars`` context, so their comm messages belong to that cell (see
``nbcog.widget.context``). ``display`` itself happens on the cell's thread.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from IPython.display import display

from nbcog.core.events import Event
from nbcog.kernel.predict import show
from nbcog.service import PredictionRef, PredictionService
from nbcog.widget import PredictionView, ServerMonitor

if TYPE_CHECKING:
    from nbcog.kernel.serving import ServerHandle

W = TypeVar("W")


def build(handle: ServerHandle, make: Callable[[PredictionService], W]) -> W:
    """``make(service)`` on the serving loop's thread, in the calling cell's context."""
    context = contextvars.copy_context()
    service = handle._service()
    return handle._call(lambda: context.run(make, service))


_monitors: dict[int, list[ServerMonitor]] = {}
"""The monitors shown for each server handle (by ``id``), told when it reloads or stops."""


def show_monitor(handle: ServerHandle) -> ServerMonitor:
    """Display the live list of every prediction of ``handle``'s server (HTTP ones too)."""
    monitor = build(
        handle,
        lambda service: ServerMonitor(service, base_url=handle.public_url, token=handle.token),
    )
    _monitors.setdefault(id(handle), []).append(monitor)
    display(monitor)
    return monitor


def server_reloaded(handle: ServerHandle, service: PredictionService) -> None:
    """Make ``handle``'s monitors follow the reloaded code's ``service`` (serving loop only)."""
    for monitor in _monitors.get(id(handle), []):
        monitor.server_reloaded(service)


def server_stopped(handle: ServerHandle) -> None:
    """Tell ``handle``'s monitors that the server is gone (serving loop only)."""
    for monitor in _monitors.pop(id(handle), []):
        monitor.server_stopped()


TEXT_FRONTEND_HINT = (
    "(a live view: frontends without widgets show the result when the prediction ends; "
    "jupyter console shows no updates, use `%cog predict --plain` there)"
)


class FirstDisplay:
    """A view as first displayed: its ``text/plain`` also says where text-only frontends look.

    The display is replaced by the final view when the prediction ends (``update_display``),
    which nbclient and JupyterLab apply; a console that ignores updates keeps this text.
    """

    def __init__(self, view: PredictionView) -> None:
        self._view = view

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The view's bundle, the hint added to its text."""
        bundle = self._view._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle
        return {**data, "text/plain": f"{data['text/plain']}\n{TEXT_FRONTEND_HINT}"}, metadata


class ViewSink:
    """A sink for ``run_prediction`` that shows the prediction as a live ``PredictionView``.

    The view is the one place the prediction is shown: its output, logs, metrics and timeline
    live there, so log events are not also written to the cell's stdout (notices such as
    "cancelling ..." still go to stderr). When the prediction ends the display is updated with
    the final view, whose ``text/html`` and ``text/plain`` forms keep it readable in a saved
    notebook and in frontends without widgets.
    """

    def __init__(self, handle: ServerHandle) -> None:
        self._handle = handle
        self.view: PredictionView | None = None

    def __call__(self, item: Event | str | PredictionRef) -> None:
        """Show the view for a new prediction; show notices; drop log events."""
        if isinstance(item, PredictionRef):
            handle = self._handle
            view = build(
                handle,
                lambda service: PredictionView(
                    item, service, base_url=handle.public_url, token=handle.token
                ),
            )
            shown: Any = display(FirstDisplay(view), display_id=True)
            view.on_done(lambda done: shown.update(done))
            self.view = view
        elif isinstance(item, str):
            show(item)

    def settle(self) -> None:
        """Publish the final view before the cell ends (see ``PredictionView.settle``)."""
        view = self.view
        if view is not None:
            self._handle._call(view.settle)
