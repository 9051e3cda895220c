"""``ServerRegistry``: the servers of one IPython shell, and what was said to it once.

The registry belongs to the shell, not to the module: ``%load_ext nbcog`` makes it (see
``nbcog.kernel.extension``), ``%unload_ext`` and ``%reload_ext`` stop its servers and drop it
(so a reload starts with an empty one), and it stops its servers when the kernel shuts down.
``nbcog.serve`` called before ``%load_ext`` makes the shell's registry the same way; the
extension, loaded later, takes that one over. Outside IPython (a plain script) there is no
shell and so no registry: each ``nbcog.serve`` call gets a registry of its own, and the
script keeps its handles (``handle.reload(...)``, ``handle.stop()``).

A handle does not know its registry: one that is no longer ``running`` (``stop()``,
``POST /shutdown``) is forgotten the next time the registry is read.
"""

from __future__ import annotations

from typing import Any

from nbcog.kernel.handle import ServerHandle

SHELL_ATTRIBUTE = "_nbcog_registry"
"""Where a shell keeps its registry: it lives and dies with the shell, one per shell."""


class ServerRegistry:
    """This shell's servers by port, oldest first, and the once-only notes already shown.

    Args:
        shell: the IPython shell whose kernel shutdown (``exit_now``) stops the servers;
            None outside IPython.
    """

    def __init__(self, shell: Any = None) -> None:
        self._handles: dict[int, ServerHandle] = {}
        self._notes_shown: set[str] = set()
        self._shell = shell
        if shell is not None:
            shell.observe(self._on_exit, names="exit_now")

    def servers(self, port: int | None = None) -> list[ServerHandle]:
        """The running servers (on ``port``, if given), oldest first.

        Stopped ones are finished off and forgotten.
        """
        for known, handle in list(self._handles.items()):
            if not handle.running:
                handle.stop()
                self._handles.pop(known, None)
        return [handle for handle in self._handles.values() if port in (None, handle.port)]

    def newest(self, port: int | None = None, label: str | None = None) -> ServerHandle | None:
        """The newest running server on ``port`` and called ``label`` (each if given)."""
        found = [handle for handle in self.servers(port) if label in (None, handle.label)]
        return found[-1] if found else None

    def add(self, handle: ServerHandle) -> None:
        """Keep ``handle``, just started, as the newest (a stopped one on its port is dropped)."""
        self._handles.pop(handle.port, None)
        self._handles[handle.port] = handle

    def first_time(self, note: str) -> bool:
        """True the first time ``note`` (a key) is asked about: say it, it was not said yet."""
        if note in self._notes_shown:
            return False
        self._notes_shown.add(note)
        return True

    def stop_all(self) -> None:
        """Stop every server (``%unload_ext``, kernel shutdown); the registry is empty after."""
        handles = list(self._handles.values())
        self._handles.clear()
        for handle in handles:
            handle.stop()

    def close(self) -> None:
        """Stop every server and stop watching the shell for its shutdown (``%unload_ext``)."""
        self.stop_all()
        if self._shell is not None:
            self._shell.unobserve(self._on_exit, names="exit_now")
            self._shell = None

    def _on_exit(self, change: dict[str, Any]) -> None:
        """Kernel shutdown (ipykernel sets ``shell.exit_now``).

        It runs on the thread that handled the shutdown request (ipykernel's control thread);
        ``ServerHandle.stop`` hands the work to each server's loop.
        """
        if change["new"]:
            self.stop_all()


def registry_of(shell: Any) -> ServerRegistry:
    """``shell``'s registry, made (and kept on the shell) the first time it is asked for."""
    registry = getattr(shell, SHELL_ATTRIBUTE, None)
    if not isinstance(registry, ServerRegistry):
        registry = ServerRegistry(shell)
        setattr(shell, SHELL_ATTRIBUTE, registry)
    return registry


def drop_registry(shell: Any) -> None:
    """Stop ``shell``'s servers and forget its registry: the next one starts empty."""
    registry = getattr(shell, SHELL_ATTRIBUTE, None)
    if isinstance(registry, ServerRegistry):
        registry.close()
    if hasattr(shell, SHELL_ATTRIBUTE):
        delattr(shell, SHELL_ATTRIBUTE)


def current_registry() -> ServerRegistry:
    """The registry of the running IPython shell, or a new one of its own outside IPython."""
    from IPython.core.getipython import get_ipython

    shell = get_ipython()
    return registry_of(shell) if shell is not None else ServerRegistry()
