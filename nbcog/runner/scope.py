"""The prediction scope behind ``cog.current_scope()`` (spec §1, §13).

The cog SDK never holds a scope: ``cog.current_scope()``, ``BaseRunner.scope`` and
``BaseRunner.record_metric`` look up ``coglet._sdk.current_scope`` each time they are called.
``install_scope_hook()`` replaces that module attribute with ``current_scope`` below, so user
code reaches nbcog's scope through the unchanged SDK. ``tests/runner/test_cog_hooks.py`` fails
loudly if a new cog stops doing the lookup at call time.

Which scope is current:

1. the scope bound by ``scope_active`` in this context. The worker enters it on the thread
   that runs a sync predict(), or inside the task that runs an async one; tasks made by
   predict() copy the context, so concurrent async predictions stay apart;
2. otherwise, on any thread but the main one, the scope of the prediction entered most
   recently. coglet has the same fallback, and it is what lets a thread started by predict()
   record metrics. The main thread is excluded because in nbcog it runs notebook cells and
   the serving loop, which must never write into a running prediction;
3. otherwise an inactive scope: silent, but a bad key or mode type or an unknown mode
   still raises, as coglet's no-op scope does.

Validation errors are raised on the caller's thread, inside predict(). Accepted records and
deletes are handed to ``emit`` as ``metric`` events, in the order they were accepted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import coglet

from nbcog.core.events import Event, metric_event
from nbcog.core.metrics import REPLACE, MetricLedger, normalize_mode, require_str

Emit = Callable[[Event], None]


class MetricRecorder:
    """``scope.metrics``: records and deletes with coglet's rules, or nothing once inactive.

    Args:
        emit: receives one ``metric`` event per accepted call; ``None`` makes the recorder
            inactive from the start (the no-op scope).
    """

    def __init__(self, emit: Emit | None) -> None:
        self._emit = emit
        self._ledger = MetricLedger()
        # A predictor may record from several threads; the lock keeps the type locks and
        # the order of emitted events consistent with each other.
        self._lock = threading.Lock()

    def record(self, key: str, value: Any, mode: str | None = None) -> None:
        """Record ``value`` under the dotted ``key`` in mode replace, incr or append."""
        require_str("key", key)
        if mode is not None:
            require_str("mode", mode)
        wire_mode = normalize_mode(mode)
        with self._lock:
            if self._emit is None:
                return
            json_value = self._ledger.record(key, value, wire_mode)
            self._emit(metric_event(key, json_value, wire_mode))

    def delete(self, key: str) -> None:
        """Delete ``key`` from the prediction's metrics and release its type lock."""
        require_str("key", key)
        with self._lock:
            if self._emit is None:
                return
            self._ledger.delete(key)
            self._emit(metric_event(key, None, REPLACE))

    def __setitem__(self, key: str, value: Any) -> None:
        """``metrics[key] = value`` replaces; assigning ``None`` deletes."""
        if value is None:
            self.delete(key)
        else:
            self.record(key, value)

    def __delitem__(self, key: str) -> None:
        """``del metrics[key]`` deletes."""
        self.delete(key)

    def close(self) -> None:
        """Go inactive: later calls (from a thread that outlived predict()) do nothing."""
        with self._lock:
            self._emit = None

    def __repr__(self) -> str:
        with self._lock:
            if self._emit is None:
                return "MetricRecorder(inactive)"
            return f"MetricRecorder(keys={len(self._ledger)})"


class PredictionScope:
    """What ``cog.current_scope()`` returns: ``metrics``, ``record_metric`` and ``context``.

    Args:
        emit: receives the ``metric`` events of this prediction (the worker's event pipe);
            ``None`` gives the inactive scope used outside predictions.
        context: the request's ``context``; user code sees this same dict on every access.
    """

    def __init__(self, emit: Emit | None, context: dict[str, str]) -> None:
        self._metrics = MetricRecorder(emit)
        self._context = dict(context)

    @classmethod
    def inactive(cls) -> PredictionScope:
        """The no-op scope; a fresh one per call (as coglet's), so its ``context`` is private."""
        return cls(None, {})

    @property
    def metrics(self) -> MetricRecorder:
        """The recorder for this prediction (read-only, as on coglet's native ``Scope``)."""
        return self._metrics

    @property
    def context(self) -> dict[str, str]:
        """The request's ``context`` (``{}`` when absent)."""
        return self._context

    def record_metric(self, key: str, value: Any, mode: str | None = None) -> None:
        """Same as ``self.metrics.record(key, value, mode)``."""
        self._metrics.record(key, value, mode)

    def __repr__(self) -> str:
        return f"Scope({self._metrics!r})"


_bound: ContextVar[PredictionScope] = ContextVar("nbcog_prediction_scope")
_latest: PredictionScope | None = None
_latest_lock = threading.Lock()


@contextmanager
def scope_active(scope: PredictionScope) -> Iterator[PredictionScope]:
    """Make ``scope`` current for the prediction's lifetime, then end it.

    Enter it on the thread that runs a sync predict(), or inside the task that runs an async
    one (not around ``run_coroutine_threadsafe``: the task would not see it). On exit the
    binding is undone and the scope goes inactive, as coglet's scope guard does, so nothing
    recorded later can follow the prediction's ``completed`` event.
    """
    global _latest  # coglet's process-wide fallback slot (see the module docstring)
    token = _bound.set(scope)
    with _latest_lock:
        _latest = scope
    try:
        yield scope
    finally:
        with _latest_lock:
            if _latest is scope:
                _latest = None
        _bound.reset(token)
        scope.metrics.close()


def current_scope() -> PredictionScope:
    """The calling prediction's scope, else an inactive one (rules in the module docstring)."""
    scope = _bound.get(None)
    if scope is not None:
        return scope
    if threading.current_thread() is not threading.main_thread():
        latest = _latest
        if latest is not None:
            return latest
    return PredictionScope.inactive()


def install_scope_hook() -> None:
    """Point ``coglet._sdk.current_scope`` at nbcog's ``current_scope``; repeat calls are free.

    Outside a prediction the SDK then gets nbcog's inactive scope instead of coglet's native
    one; both behave the same there.
    """
    # PredictionScope is a duck-typed stand-in: coglet's Scope is a final native class.
    coglet._sdk.current_scope = current_scope  # type: ignore[assignment]
