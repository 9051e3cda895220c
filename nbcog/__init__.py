"""nbcog: Cog's prediction server, living inside a Jupyter kernel.

``nbcog.Server(Predictor)`` serves a predictor written with the real ``cog`` SDK over Cog's
HTTP predictions API, on the current asyncio loop. ``python -m nbcog serve predict.py:Predictor``
does the same from a terminal.

Importing ``nbcog`` imports none of tornado, ipywidgets, IPython or cog: the server is
resolved on first use (tests/test_layering.py checks this).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbcog.http.server import PortInUse, Server

__all__ = ["PortInUse", "Server", "__version__"]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("Server", "PortInUse"):
        from nbcog.http import server

        return getattr(server, name)
    msg = f"module 'nbcog' has no attribute {name!r}"
    raise AttributeError(msg)
