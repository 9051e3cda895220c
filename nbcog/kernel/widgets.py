"""The live widgets (nbcog.widget) as the magics and handles show them.

Widgets are built and updated on the serving loop's thread, which owns the service (the
kernel's own thread in kernel-loop mode, the server thread with ``--thread``), but inside the
calling cell's ``contextvars`` context, so their comm messages belong to that cell (see
``nbcog.widget.context``). ``display`` itself happens on the cell's thread. What a widget
needs of its server (the service, a way onto the serving loop, the URL and token) is passed
in: this module knows nothing of server handles.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from IPython.display import display

from nbcog.core.events import Event
from nbcog.kernel.predict import show
from nbcog.service import PredictionRef, PredictionService
from nbcog.widget import PredictionView, ServerMonitor

T = TypeVar("T")
W = TypeVar("W")


class RunOnLoop(Protocol):
    """Runs a function on the serving loop's thread and returns its result."""

    def __call__(self, fn: Callable[[], T], /) -> T: ...


def build(
    run_on_loop: RunOnLoop, service: PredictionService, make: Callable[[PredictionService], W]
) -> W:
    """``make(service)`` on the serving loop's thread, in the calling cell's context."""
    context = contextvars.copy_context()
    return run_on_loop(lambda: context.run(make, service))


def show_monitor(
    run_on_loop: RunOnLoop,
    service: PredictionService,
    base_url: str,
    token: str | None,
    shown: list[ServerMonitor],
) -> ServerMonitor:
    """Display the live list of every prediction of ``service`` (HTTP ones too).

    The monitor joins ``shown`` (its server's monitors, told of a reload or a stop) before it
    is displayed, so a reload meanwhile reaches it.
    """
    monitor = build(
        run_on_loop,
        service,
        lambda served: ServerMonitor(served, base_url=base_url, token=token),
    )
    shown.append(monitor)
    display(monitor)
    return monitor


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

    Args:
        run_on_loop: runs a function on the serving loop's thread.
        service: the serving service, asked for when the prediction starts (it may have
            been reloaded since); it raises when the server is stopped.
        base_url: the server's URL as the view's snippets show it.
        token: the server's bearer token, or None.
    """

    def __init__(
        self,
        run_on_loop: RunOnLoop,
        service: Callable[[], PredictionService],
        base_url: str,
        token: str | None,
    ) -> None:
        self._run_on_loop = run_on_loop
        self._service = service
        self._base_url = base_url
        self._token = token
        self.view: PredictionView | None = None

    def __call__(self, item: Event | str | PredictionRef) -> None:
        """Show the view for a new prediction; show notices; drop log events."""
        if isinstance(item, PredictionRef):
            base_url, token = self._base_url, self._token
            view = build(
                self._run_on_loop,
                self._service(),
                lambda service: PredictionView(item, service, base_url=base_url, token=token),
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
            self._run_on_loop(view.settle)
