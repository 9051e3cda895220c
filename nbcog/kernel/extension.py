"""The IPython extension hooks: what ``%load_ext nbcog`` and ``%reload_ext nbcog`` do.

Loading gives the shell its ``ServerRegistry`` (``nbcog.kernel.registry``: it stops its
servers at kernel shutdown) and registers the ``%cog`` magic, bound to that registry.
Unloading (which ``%reload_ext`` does first) stops every server of the registry and drops it,
so a reload never leaks a listening port, a worker thread or a loop thread and starts with an
empty registry, and removes the magic.
"""

from __future__ import annotations

import logging
from typing import Any

from nbcog.kernel.magics import CogMagics
from nbcog.kernel.registry import drop_registry, registry_of


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%cog`` (called by ``%load_ext nbcog``)."""
    ipython.register_magics(CogMagics(ipython, registry_of(ipython)))
    access = logging.getLogger("tornado.access")
    if access.level == logging.NOTSET:
        # A 409 or 422 answered to a client is not news for whichever cell happens to run:
        # keep per-request lines out of cell output, but let server errors (5xx) through.
        access.setLevel(logging.ERROR)


def unload_ipython_extension(ipython: Any) -> None:
    """Stop this kernel's servers and remove ``%cog`` (``%unload_ext``, ``%reload_ext``)."""
    drop_registry(ipython)
    ipython.magics_manager.magics["line"].pop("cog", None)
