"""The IPython extension hooks: what ``%load_ext nbcog`` and ``%reload_ext nbcog`` do.

Loading registers the ``%cog`` magic and the kernel-shutdown hook. Unloading (which
``%reload_ext`` does first) stops every server this kernel started, so a reload never leaks a
listening port, a worker thread or a loop thread, and removes the magic.
"""

from __future__ import annotations

import logging
from typing import Any

from nbcog.kernel import serving
from nbcog.kernel.magics import CogMagics


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%cog`` (called by ``%load_ext nbcog``)."""
    ipython.register_magics(CogMagics)
    serving.install_shutdown_hook(ipython)
    access = logging.getLogger("tornado.access")
    if access.level == logging.NOTSET:
        # A 409 or 422 answered to a client is not news for whichever cell happens to run:
        # keep per-request lines out of cell output, but let server errors (5xx) through.
        access.setLevel(logging.ERROR)


def unload_ipython_extension(ipython: Any) -> None:
    """Stop this kernel's servers and remove ``%cog`` (``%unload_ext``, ``%reload_ext``)."""
    serving.stop_all()
    ipython.magics_manager.magics["line"].pop("cog", None)
