"""nbcog inside IPython: ``%load_ext nbcog``, the ``%cog`` magics and ``nbcog.serve``.

The only package that imports IPython, and (in ``loop.py`` only, lazily) ``nest_asyncio2``.
``nbcog/__init__.py`` imports it on first use, so ``import nbcog`` stays light.

* ``extension``: ``load_ipython_extension`` / ``unload_ipython_extension``.
* ``magics``: ``%cog serve|stop|status|predict|schema``.
* ``serving``: ``serve()``: start or reload a server; ``servers()``, the shell's running ones.
* ``handle``: ``ServerHandle``, one server (thread mode: a ``nbcog.runner.loopthread`` loop).
* ``registry``: ``ServerRegistry``, a shell's servers (no module keeps any state).
* ``onsave``: ``--reload``, reloading on each save.
* ``history``: ``%cog history``, ``%cog predict --again``, ``%cog snippet``.
* ``loop``: blocking a cell while the loop keeps turning (nest_asyncio2), interrupts.
* ``predict``, ``inputs``, ``render``, ``report``, ``lag``, ``ports``: the pieces.
"""

from __future__ import annotations

from nbcog.kernel.extension import load_ipython_extension, unload_ipython_extension
from nbcog.kernel.handle import CannotPredict, ServerHandle
from nbcog.kernel.predict import PredictionFailed, PredictionResult
from nbcog.kernel.serving import serve

__all__ = [
    "CannotPredict",
    "PredictionFailed",
    "PredictionResult",
    "ServerHandle",
    "load_ipython_extension",
    "serve",
    "unload_ipython_extension",
]
