"""Tripwires for the places where nbcog depends on how the installed cog SDK is built (spec §1).

If one of these fails after a cog upgrade, nbcog's scope hook or cancel class no longer
reaches user code: fix nbcog/runner/scope.py or the worker before anything else.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cog
import coglet

from nbcog.runner.scope import PredictionScope, install_scope_hook, scope_active

MOVED = (
    "cog {version} no longer looks up coglet._sdk.current_scope at call time in {where}; "
    "nbcog's metrics scope (nbcog/runner/scope.py install_scope_hook) does not reach user code"
)


def lookups_in_prediction(scope: PredictionScope) -> dict[str, object]:
    """What each SDK entry point returns on a thread running a prediction bound to scope."""

    def run() -> dict[str, object]:
        with scope_active(scope):
            runner = cog.BaseRunner()
            runner.record_metric("hook_probe", 1)
            return {"cog.current_scope()": cog.current_scope(), "BaseRunner.scope": runner.scope}

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def test_sdk_looks_up_the_scope_hook_at_call_time() -> None:
    """cog.current_scope(), BaseRunner.scope and .record_metric all reach nbcog's scope."""
    install_scope_hook()
    emitted: list[object] = []
    scope = PredictionScope(emitted.append, {})
    for where, seen in lookups_in_prediction(scope).items():
        assert seen is scope, MOVED.format(version=cog.__version__, where=where)
    assert len(emitted) == 1, MOVED.format(
        version=cog.__version__, where="BaseRunner.record_metric"
    )


def test_hook_is_a_plain_module_attribute() -> None:
    """coglet._sdk.current_scope can be replaced, and installing twice keeps nbcog's hook."""
    install_scope_hook()
    install_scope_hook()
    assert coglet._sdk.current_scope.__module__ == "nbcog.runner.scope", (
        "coglet._sdk.current_scope could not be replaced: coglet "
        f"{coglet.__version__} made it read-only or moved it"
    )


def test_cancel_exception_is_coglets_base_exception() -> None:
    """cog.CancelationException is coglet's class, a BaseException that is not an Exception."""
    cancel = cog.CancelationException
    assert cancel is coglet.CancelationException, (
        f"cog {cog.__version__} no longer re-exports coglet.CancelationException; "
        "nbcog's worker raises coglet's class, so user `except cog.CancelationException` misses it"
    )
    assert issubclass(cancel, BaseException), "CancelationException is no longer a BaseException"
    assert not issubclass(cancel, Exception), (
        f"cog {cog.__version__} made CancelationException an Exception: `except Exception` in "
        "user code would now swallow nbcog's cancels (spec §1 says BaseException only)"
    )
