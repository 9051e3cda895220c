"""``nbcog.serve``: a predictor served from a notebook, or reloaded, in the shell's registry.

Rules a user can rely on (``%cog serve`` follows them too):

* **Serving again reloads.** Serving with the ``port`` of a running server, or without a
  port (or with 0) under the name of a running server, *reloads* that server in place: same
  port, same URL, new code, ``setup()`` re-run on a thread (see ``nbcog.http.reloading`` for
  what happens to predictions in flight). Another name or another port starts another
  server. A change of ``host`` or ``thread`` restarts the server on its port instead.
* **Ports.** Without ``port``: Cog's 5000 when free, else the next free one up to 5099, and the
  message says which port was taken and by whom. An explicit ``port`` that another program
  holds is a ``PortInUse`` error naming the holder (another nbcog server, a Cog server, a pid).
* **Loops.** By default the server runs on the loop of the calling thread (the kernel's, in a
  notebook); ``thread=True`` runs it on a loop of its own in a daemon thread. Without a running
  loop (a script, IPython in a terminal) a thread is used.
* **No leaks.** ``stop()`` (``%cog stop``), ``%reload_ext nbcog`` and kernel shutdown close the
  socket, the worker threads and, in thread mode, the loop thread.
* **One registry per shell.** "A running server" above means one of the calling shell's
  registry (``nbcog.kernel.registry``), the one ``%cog`` uses too; outside IPython each call
  starts afresh.

The handle itself is ``nbcog.kernel.handle.ServerHandle``.
"""

from __future__ import annotations

import errno
import os

from nbcog.core.urls import PROXY_SSE_NOTE
from nbcog.http.auth import TOKEN_ENV, exposure_warning, new_token
from nbcog.http.server import DEFAULT_PORT, PortInUse
from nbcog.kernel.handle import ServerHandle, label_of, running_loop
from nbcog.kernel.ports import describe_holder
from nbcog.kernel.registry import ServerRegistry, current_registry
from nbcog.kernel.report import LOOP_NOTE
from nbcog.runner.watching import predictor_file

PORT_SEARCH = 100


def servers() -> list[ServerHandle]:
    """The running servers of this shell's registry, oldest first."""
    return current_registry().servers()


def _say(message: str) -> None:
    print(message, flush=True)


def _start(
    registry: ServerRegistry,
    predictor: object,
    label: str,
    host: str,
    port: int,
    upload_url: str | None,
    thread: bool,
    token: str | None,
) -> ServerHandle:
    handle = ServerHandle(
        predictor, label, host=host, port=port, upload_url=upload_url, thread=thread, token=token
    )
    registry.add(handle)
    return handle


def _start_on_free_port(
    registry: ServerRegistry,
    predictor: object,
    label: str,
    host: str,
    upload_url: str | None,
    thread: bool,
    token: str | None,
) -> ServerHandle:
    first_taken: str | None = None
    for port in range(DEFAULT_PORT, DEFAULT_PORT + PORT_SEARCH):
        try:
            handle = _start(registry, predictor, label, host, port, upload_url, thread, token)
        except PortInUse:
            if first_taken is None:
                first_taken = f"port {port} is taken by {describe_holder(host, port)}"
            continue
        if first_taken is not None:
            _say(f"nbcog: {first_taken}; serving on port {handle.port} instead")
        return handle
    return _start(registry, predictor, label, host, 0, upload_url, thread, token)


def serve(
    predictor: object,
    *,
    port: int | None = None,
    host: str = "127.0.0.1",
    upload_url: str | None = None,
    thread: bool | None = None,
    name: str | None = None,
    token: str | bool | None = None,
    reload: bool = False,
) -> ServerHandle:
    """Serve ``predictor`` over Cog's HTTP API from this process and return its handle.

    Args:
        predictor: a class, instance or function (cells included), or ``file.py:Name``.
        port: the TCP port; None takes 5000 or the next free one; 0 any free one.
        host: the interface to bind (127.0.0.1; ``0.0.0.0`` exposes it to the network).
        upload_url: PUT file outputs there instead of returning data URLs.
        thread: serve from a daemon thread (True), the calling thread's running loop (False),
            or the loop when one is running here, else a thread (None).
        name: how messages call it (default: the class or function name, or the ref).
        token: require ``Authorization: Bearer TOKEN`` on every route but the health-check:
            a string is the token; True makes a random one (printed once; a reload keeps the
            server's current one); None uses ``NBCOG_TOKEN`` if set; False serves openly.
        reload: reload on each save of ``predictor`` (a ``file.py:Name`` reference) and of
            the local modules it imports (``nbcog.kernel.onsave``).

    Raises:
        ValueError: ``reload`` with a predictor that is not a ``file.py`` reference.
        PortInUse: ``port`` is held by another program (the message names it).
    """
    return serve_in(
        current_registry(),
        predictor,
        port=port,
        host=host,
        upload_url=upload_url,
        thread=thread,
        name=name,
        token=token,
        reload=reload,
    )


def serve_in(
    registry: ServerRegistry,
    predictor: object,
    *,
    port: int | None = None,
    host: str = "127.0.0.1",
    upload_url: str | None = None,
    thread: bool | None = None,
    name: str | None = None,
    token: str | bool | None = None,
    reload: bool = False,
) -> ServerHandle:
    """``serve``, among the servers of ``registry`` (the magics pass the extension's)."""
    label = name or label_of(predictor)
    watched: str | None = None
    if reload:
        if not isinstance(predictor, str):
            msg = "reload on save watches a file: serve file.py:Name"
            raise ValueError(msg)
        predictor_file(predictor)  # a ValueError for a module:Name reference
        watched = predictor
    if thread is None:
        thread = running_loop() is None
    # port 0 is "any free port", not a server
    target = registry.newest(port=port) if port else registry.newest(label=label)
    current = target.token if target is not None else None
    token_value, generated = _resolve_token(token, current)
    if target is not None and target.host == host and target.thread == thread:
        was = target.label
        cancelled = target.reload(predictor, label, token_value)
        what = f"{label} (was {was})" if was != label else label
        fate = "no predictions were in flight"
        if cancelled:
            fate = f"cancelled {len(cancelled)} in flight on the old code: {', '.join(cancelled)}"
        _say(f"nbcog: reloaded {what} at {target.url} (same port); {fate}; running setup() again")
        _say_token(target, token_value if generated else None)
        target.show_setup()
        target.reload_on_save(watched)
        return target
    if target is not None:
        port = target.port
        mode = "thread" if thread else "kernel loop"
        _say(f"nbcog: restarting the server on port {port} ({mode} mode, host {host})")
        target.stop()
    if port is None:
        handle = _start_on_free_port(
            registry, predictor, label, host, upload_url, thread, token_value
        )
    else:
        try:
            handle = _start(registry, predictor, label, host, port, upload_url, thread, token_value)
        except PortInUse:
            holder = describe_holder(host, port)
            msg = (
                f"port {port} on {host} is taken by {holder}; stop it, or pick another port "
                "(leave the port out to take 5000 or the next free one)"
            )
            raise PortInUse(errno.EADDRINUSE, msg) from None
    _say(f"nbcog: serving {label} at {handle.url} ({handle.mode})")
    if handle.proxy_url:
        _say(f"nbcog: through the Jupyter proxy: {handle.proxy_url}\n       note: {PROXY_SSE_NOTE}")
    _say(f"  curl -s {handle.url}/health-check")
    _say_token(handle, token_value if generated else None)
    if not thread and registry.first_time("loop"):
        _say(LOOP_NOTE)
    handle.show_setup()
    handle.reload_on_save(watched)
    return handle


def _resolve_token(token: str | bool | None, current: str | None) -> tuple[str | None, bool]:
    """The token to require, and whether it was made just now (then it is shown once)."""
    if token is None:
        return os.environ.get(TOKEN_ENV) or None, False
    if token is False:
        return None, False
    if token is True or token == "":
        return (current, False) if current else (new_token(), True)
    return str(token), False


def _say_token(handle: ServerHandle, generated: str | None) -> None:
    """Show a generated token once, and warn about a network interface without one."""
    if generated is not None:
        _say(f"nbcog: token (shown once; handle.token has it): {generated}")
    warning = exposure_warning(handle.host, handle.token)
    if warning:
        _say(warning)
