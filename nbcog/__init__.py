"""nbcog: Cog's prediction server, living inside a Jupyter kernel.

``nbcog.Server(Predictor)`` serves a predictor written with the real ``cog`` SDK over Cog's
HTTP predictions API, on the current asyncio loop. ``python -m nbcog serve predict.py:Predictor``
does the same from a terminal. In a notebook, ``%load_ext nbcog`` adds the ``%cog`` magics
(``%cog serve Predictor``), and ``nbcog.serve(Predictor)`` returns a handle with ``url``,
``predict()`` and ``stop()``.

Importing ``nbcog`` imports none of tornado, ipywidgets, IPython or cog: the server is
resolved on first use (tests/project/test_layering.py checks this).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbcog._version import __version__

if TYPE_CHECKING:
    from nbcog.assembly import Server
    from nbcog.http.server import PortInUse
    from nbcog.kernel import CannotPredict, PredictionFailed, PredictionResult, ServerHandle, serve

__all__ = [
    "CannotPredict",
    "PortInUse",
    "PredictionFailed",
    "PredictionResult",
    "Server",
    "ServerHandle",
    "__version__",
    "load_ipython_extension",
    "serve",
    "unload_ipython_extension",
]


_KERNEL_NAMES = ("serve", "ServerHandle", "PredictionFailed", "PredictionResult", "CannotPredict")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbcog``: register the ``%cog`` magics (IPython is imported only now)."""
    from nbcog.kernel import extension

    extension.load_ipython_extension(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext nbcog`` (and ``%reload_ext``): stop this kernel's servers."""
    from nbcog.kernel import extension

    extension.unload_ipython_extension(ipython)


def __getattr__(name: str) -> Any:
    if name == "Server":
        from nbcog.assembly import Server

        return Server
    if name == "PortInUse":
        from nbcog.http.server import PortInUse

        return PortInUse
    if name in _KERNEL_NAMES:
        import nbcog.kernel

        return getattr(nbcog.kernel, name)
    msg = f"module 'nbcog' has no attribute {name!r}"
    raise AttributeError(msg)
