"""Reload on save (``--reload``): watch a predictor file and the local modules it imports.

The watched set is the predictor file plus every imported module whose file lies in the
predictor's folder (or below it), looked up in ``sys.modules`` when a change arrives, so a
module imported by the new code is watched from its first import on. Files are watched with
``watchfiles`` (inotify and friends, via Rust's ``notify``): the watcher thread sleeps in the
OS, so an idle server costs no CPU worth measuring (``tests/cli/test_reload.py`` measures it).

A save is checked before anything is swapped: a changed file that does not compile (a
syntax error) leaves the old code serving, and the error is reported once for that save.
Otherwise the local modules are dropped from ``sys.modules``, so the new ``setup()`` imports
their saved versions too, and the caller reloads through the hot-reload path.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import watchfiles

STEP_MS = 200
"""A save is reported once no further change came for this long (editors write, rename,
touch); it is also how often the watcher thread wakes to check ``stop()``: 5 times a second
(watchfiles' default, 50 ms, costs four times the idle CPU for no visible gain)."""

DEBOUNCE_MS = 1000
"""Changes are grouped for at most this long, even while they keep coming."""

READY_MS = 1000
"""watchfiles returns to Python after this long without a change; the first return says the OS
watch is in place (``on_ready``): a save before it could go unseen."""


def predictor_file(ref: str) -> Path:
    """The file of a ``file.py:Name`` reference, resolved.

    Raises:
        ValueError: ``ref`` is not a ``.py`` file reference (a module or an object).
    """
    path = ref.partition(":")[0]
    if not path.endswith(".py"):
        msg = f"--reload watches a file: give file.py:Name, not {ref!r}"
        raise ValueError(msg)
    return Path(path).resolve()


def local_modules(folder: Path) -> dict[Path, str]:
    """Imported modules whose source file is under ``folder``: file -> module name."""
    found: dict[Path, str] = {}
    prefix = str(folder)
    for name, module in list(sys.modules.items()):
        if name == "__main__" or name.partition(".")[0] == "nbcog":  # never the server itself
            continue
        file = getattr(module, "__file__", None)
        if not file or not file.endswith(".py"):
            continue
        if os.path.isabs(file) and not file.startswith(prefix):
            continue  # cheap: most modules live in site-packages (a symlink into folder is missed)
        path = Path(file).resolve()
        if path.is_relative_to(folder):
            found[path] = name
    return found


def forget_local_modules(folder: Path) -> list[str]:
    """Drop the modules under ``folder`` from ``sys.modules``; the next import re-reads them."""
    names = sorted(local_modules(folder).values())
    for name in names:
        sys.modules.pop(name, None)
    return names


def syntax_error(path: Path) -> str | None:
    """Why ``path`` does not compile (as Python prints it), or None when it does."""
    try:
        source = path.read_bytes()
    except OSError as exc:
        return f"{path.name}: cannot read it: {exc}"
    try:
        compile(source, str(path), "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        return "".join(traceback.format_exception_only(exc)).rstrip()
    return None


@dataclass(frozen=True)
class Save:
    """One save: the watched files that changed, and why it cannot be served (or None)."""

    changed: tuple[Path, ...]
    error: str | None

    @property
    def names(self) -> str:
        """The changed files' names, for messages."""
        return ", ".join(path.name for path in self.changed)


class SourceWatcher:
    """Calls ``on_save(Save)`` on its own thread after each save of a watched file.

    ``on_ready()`` is called once, on that thread, when the OS watch is in place (about
    ``READY_MS`` after ``start()``). ``stop()`` ends the thread within ``STEP_MS``; it is
    idempotent.
    """

    def __init__(
        self,
        ref: str,
        on_save: Callable[[Save], None],
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.file = predictor_file(ref)
        self.folder = self.file.parent
        self._on_save = on_save
        self._on_ready = on_ready
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nbcog-reload", daemon=True)

    def watched(self) -> list[Path]:
        """The files a save of which reloads: the predictor file and its local modules."""
        return sorted({self.file, *local_modules(self.folder)})

    def start(self) -> None:
        """Begin watching (the thread is a daemon: it never keeps a process alive)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching and wait for the thread."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5.0)

    def _relevant(self, _change: watchfiles.Change, path: str) -> bool:
        resolved = Path(path).resolve()
        return resolved == self.file or resolved in local_modules(self.folder)

    def _run(self) -> None:
        for changes in watchfiles.watch(
            self.folder,
            watch_filter=self._relevant,
            stop_event=self._stop,
            debounce=DEBOUNCE_MS,
            step=STEP_MS,
            rust_timeout=READY_MS,
            yield_on_timeout=True,
            raise_interrupt=False,
        ):
            if not self.ready.is_set():
                self.ready.set()
                if self._on_ready is not None:
                    self._on_ready()
            if not changes:  # the timeout: nothing was saved
                continue
            changed = tuple(sorted({Path(path).resolve() for _, path in changes}))
            present = [path for path in changed if path.exists()]
            errors = [error for error in map(syntax_error, present) if error]
            self._on_save(Save(changed, "\n".join(errors) or None))
