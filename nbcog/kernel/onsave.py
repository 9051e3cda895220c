"""``%cog serve file.py:Name --reload``: the serving cell reloads its server on each save.

The watching is ``nbcog.runner.watching``'s; this module is the notebook's side of it. Each
save is applied on the serving loop, inside the serving cell's ``contextvars`` context, and
reported in one display of the serving cell that is updated in place (``display_id``), so
the report stays where the server was started whichever cell ran last: "saved, reloaded",
then the new setup's progress, or "saved, not reloaded" with the syntax error, once per save.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from typing import Any, Protocol

from IPython.core.getipython import get_ipython

from nbcog.kernel.render import Text
from nbcog.kernel.report import SetupView
from nbcog.runner.watching import Save, SourceWatcher, forget_local_modules


class Reloadable(Protocol):
    """What a save reloads: a server handle (``nbcog.kernel.handle.ServerHandle``)."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The serving loop."""

    @property
    def label(self) -> str:
        """How messages name the server."""

    @property
    def url(self) -> str:
        """The server's URL."""

    @property
    def token(self) -> str | None:
        """The server's bearer token, or None."""

    @property
    def running(self) -> bool:
        """Started and not stopped."""

    def reload(self, predictor: object, label: str | None, token: str | None) -> list[str]:
        """Serve ``predictor`` on the same port; the ids of the predictions it cancelled."""

    def show_setup(self, view: SetupView | None = None) -> None:
        """Show the new setup's progress in ``view``."""


class SaveReloader:
    """Watches ``ref`` for ``handle``; build it in the serving cell, ``stop()`` with the server."""

    def __init__(self, handle: Reloadable, ref: str) -> None:
        self.ref = ref
        self._handle = handle
        self._context = contextvars.copy_context()
        self._watcher = SourceWatcher(ref, self._on_save, self._on_ready)
        self._display: Any = None
        self.saves = 0
        if getattr(get_ipython(), "kernel", None) is not None:
            from IPython.display import display

            self._display = display(
                Text(f"nbcog: starting to watch {self._watcher.file.name}"), display_id=True
            )

    def _on_ready(self) -> None:  # on the watcher's thread, once its OS watch is in place
        file = self._watcher.file.name
        text = f"nbcog: reloading on save of {file} (and the local modules it imports)"
        self._handle.loop.call_soon_threadsafe(self._context.run, self._say, text)

    def start(self) -> None:
        """Begin watching."""
        self._watcher.start()

    def stop(self) -> None:
        """Stop watching (the server keeps serving)."""
        self._watcher.stop()

    def _on_save(self, save: Save) -> None:  # on the watcher's thread
        self._handle.loop.call_soon_threadsafe(self._context.run, self._apply, save)

    def _say(self, text: str) -> None:
        if self._display is not None:
            self._display.update(Text(text))
        else:
            print(text, flush=True)

    def _apply(self, save: Save) -> None:
        """On the serving loop: reload, or report why not."""
        if not self._handle.running:
            return
        self.saves += 1
        when = time.strftime("%H:%M:%S")
        if save.error is not None:
            self._say(
                f"nbcog: {save.names} saved at {when}, not reloaded: the old code keeps "
                f"serving\n{save.error}"
            )
            return
        forget_local_modules(self._watcher.folder)
        cancelled = self._handle.reload(self.ref, self._handle.label, self._handle.token)
        fate = f"cancelled {', '.join(cancelled)}" if cancelled else "none was in flight"
        heading = (
            f"nbcog: {save.names} saved at {when}: reloaded at {self._handle.url} "
            f"(same port); {fate}"
        )
        self._handle.show_setup(
            SetupView(
                self._handle.label,
                self._handle.url,
                self._handle.token,
                handle=self._display,
                heading=heading,
            )
        )
