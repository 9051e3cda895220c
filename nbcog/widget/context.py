"""Widget work runs in the context the widget was created in (normally a notebook cell's).

Why: ipykernel (7.x) tags every comm message with the request found in the current
``contextvars`` context, and routes the frontend's next messages on that comm to the subshell
that request came from. Loop callbacks that started in a worker thread carry no context, so the
kernel falls back to the last request it handled anywhere, which can be a frontend subshell that
has since been deleted (JupyterLab 4.5+ opens and closes them). From then on the frontend's
messages to the widget (the view's sync request, Cancel, a monitor click) are dropped with
"Unknown subshell_id". Sending from the creating cell's context keeps them on a live shell, and
ties the widget's messages to the cell that made it, as ipywidgets does for its own updates.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class CreationContext:
    """A copy of the creator's context; ``run(fn)`` calls ``fn`` inside it."""

    def __init__(self) -> None:
        self._context = contextvars.copy_context()

    def run(self, fn: Callable[..., T], *args: object) -> T:
        """Call ``fn(*args)`` in the creation context (not re-entrant for one widget)."""
        return self._context.run(fn, *args)
