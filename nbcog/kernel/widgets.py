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
from nbcog.service import InFlight, PredictionService
from nbcog.widget import PredictionView, ServerMonitor

if TYPE_CHECKING:
    from nbcog.kernel.serving import ServerHandle

W = TypeVar("W")


def build(handle: ServerHandle, make: Callable[[PredictionService], W]) -> W:
    """``make(service)`` on the serving loop's thread, in the calling cell's context."""
    context = contextvars.copy_context()
    service = handle._service()
    return handle._call(lambda: context.run(make, service))


def show_monitor(handle: ServerHandle) -> ServerMonitor:
    """Display the live list of every prediction of ``handle``'s server (HTTP ones too)."""
    monitor = build(handle, lambda service: ServerMonitor(service, base_url=handle.url))
    display(monitor)
    return monitor


def view_sink(handle: ServerHandle) -> Callable[[Event | str | InFlight], None]:
    """A sink for ``run_prediction`` that shows a live ``PredictionView`` as well as the logs.

    Logs are still written to the cell's stdout/stderr, as ``cog predict`` does, so frontends
    without widget support (and plain-text exports) show them too. When the prediction ends
    the display is refreshed, so a saved notebook keeps a static rendering of the final state.
    """

    def sink(item: Event | str | InFlight) -> None:
        if isinstance(item, InFlight):
            view = build(handle, lambda service: PredictionView(item, service, base_url=handle.url))
            shown: Any = display(view, display_id=True)
            view.on_done(lambda done: shown.update(done))
        else:
            show(item)

    return sink
