"""The predictor runtime: loading, ``setup()``, the user ``healthcheck()``, and the runner.

Everything here happens off the serving loop: loading and setup on a setup thread (their
output goes to the health-check's setup logs, spec §12), async pieces on the async predictor
loop. The service only sees futures.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Callable
from typing import Any

from nbcog.core.errors import describe_exception
from nbcog.core.openapi import build_document
from nbcog.core.strictjson import scrub_surrogates
from nbcog.core.versions import versions
from nbcog.runner import capture
from nbcog.runner.cog_adapter import HandlerInfo, PredictorInfo, describe_predictor, load_target
from nbcog.runner.loopthread import LoopThread
from nbcog.runner.scope import install_scope_hook
from nbcog.runner.tracebacks import user_traceback_lines
from nbcog.runner.worker import Runner

SYNC_CONCURRENCY_ERROR = "COG_MAX_CONCURRENCY > 1 requires an async run() or predict() method"


class SetupFailed(Exception):
    """Loading or ``setup()`` raised; the message is ``{E}`` of the original error."""


def _slots_from_env() -> int | None:
    raw = os.environ.get("COG_MAX_CONCURRENCY", "")
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value > 0 else None


class Runtime:
    """Loads a predictor (and optionally a training handler), sets it up, and runs jobs.

    Args:
        predictor: a class, instance or function, or a ``file.py:Name`` / ``module:Name`` string.
        train: an optional separate training function or class (``--train``).
    """

    def __init__(self, predictor: object, *, train: object | None = None) -> None:
        self._predictor_ref = predictor
        self._train_ref = train
        self.async_loop = LoopThread("nbcog-async-predictor")  # the one loop of async user code
        self.predict: HandlerInfo | None = None
        self.train: HandlerInfo | None = None
        self.slots = 1
        self.runner: Runner | None = None
        self._infos: list[PredictorInfo] = []
        self._log_parts: list[tuple[str, str]] = []  # (source, text)
        self._log_lock = threading.Lock()
        self._log_listeners: list[Callable[[str, str], None]] = []
        self._health_executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="nbcog-healthcheck"
        )

    # -- setup -------------------------------------------------------------------------

    @property
    def setup_logs(self) -> str:
        """Everything loading and ``setup()`` printed so far (plus the error, on failure)."""
        with self._log_lock:
            return "".join(text for _, text in self._log_parts)

    @property
    def serves_training(self) -> bool:
        """A training handler is (or, once loaded, will be) served: its own or ``--train``'s."""
        return self.train is not None or self._train_ref is not None

    def append_setup_log(self, source: str, text: str) -> None:
        """Add ``text`` to the setup logs (and tell their followers), from any thread.

        Loading and ``setup()`` write here through their log capture; the service adds its
        own line when setup times out, so the health-check's logs say why it failed.
        """
        text = scrub_surrogates(text)  # a traceback can quote undecodable bytes too
        with self._log_lock:
            self._log_parts.append((source, text))
            for listener in self._log_listeners:
                listener(source, text)

    def follow_setup_logs(self, listener: Callable[[str, str], None]) -> list[tuple[str, str]]:
        """Call ``listener(source, text)`` for every later setup log chunk.

        Returns the ``(source, text)`` chunks so far: nothing is missed or repeated between
        them and the first call. The
        listener runs on the thread that wrote the chunk (the setup thread, inside its log
        capture, or the serving loop for a setup timeout), under a lock: it must be quick and
        must not write to ``sys.stdout``/``sys.stderr`` (that would be captured again). Hand
        the text to the serving loop instead.
        """
        with self._log_lock:
            self._log_listeners.append(listener)
            return list(self._log_parts)

    def start_setup(self) -> concurrent.futures.Future[None]:
        """Load and set up on a new thread; the future fails with ``SetupFailed``."""
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        thread = threading.Thread(
            target=self._setup_thread, args=(future,), name="nbcog-setup", daemon=True
        )
        thread.start()
        return future

    def _setup_thread(self, future: concurrent.futures.Future[None]) -> None:
        install_scope_hook()
        capture.install()
        log = capture.LogCapture(self.append_setup_log)
        log.activate()
        try:
            self._load_and_setup()
        except BaseException as exc:
            log.deactivate()
            lines = user_traceback_lines(exc)
            self.append_setup_log("stderr", "".join(lines[:-1]) + describe_exception(exc) + "\n")
            future.set_exception(SetupFailed(describe_exception(exc)))
            return
        log.deactivate()
        future.set_result(None)

    def load(self) -> None:
        """Import and describe the predictor (and training handler) without ``setup()``."""
        if self._infos:
            return
        target = load_target(self._predictor_ref)
        info = describe_predictor(target, kind="predict")
        self._infos.append(info)
        self.predict, self.train = info.predict, info.train
        if self._train_ref is not None:
            train_info = describe_predictor(load_target(self._train_ref), kind="train")
            self._infos.append(train_info)
            self.train = train_info.train

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI document of the loaded handlers (spec §5)."""
        return build_document(
            cog_version=versions()["python_sdk"],
            predict=self.predict.schema if self.predict else None,
            train=self.train.schema if self.train else None,
        )

    def _load_and_setup(self) -> None:
        self.load()
        self.slots = _slots_from_env() or (self.predict.concurrency if self.predict else 1)
        handlers = [h for h in (self.predict, self.train) if h is not None]
        if self.slots > 1 and not all(h.is_async or h.is_async_gen for h in handlers):
            raise ValueError(SYNC_CONCURRENCY_ERROR)
        for each in self._infos:
            self._call_setup(each)
        self.runner = Runner(slots=self.slots, async_loop=self.async_loop)

    def _call_setup(self, info: PredictorInfo) -> None:
        if info.setup is None:
            return
        args: dict[str, Any] = {}
        if info.setup_takes_weights:
            args["weights"] = os.environ.get("COG_WEIGHTS") or None
        if info.setup_is_async:
            self.async_loop.submit(_call_async(info.setup, args)).result()
        else:
            info.setup(**args)

    # -- health ------------------------------------------------------------------------

    def healthcheck(self) -> concurrent.futures.Future[Any] | None:
        """Start the user ``healthcheck()``; None when the predictor has none."""
        for info in self._infos:
            if info.healthcheck is None:
                continue
            if asyncio.iscoroutinefunction(info.healthcheck):
                return self.async_loop.submit(_call_async(info.healthcheck, {}))
            return self._health_executor.submit(info.healthcheck)
        return None

    # -- teardown ----------------------------------------------------------------------

    def close(self) -> None:
        """Stop the worker threads and the async loop (running sync jobs end on their own)."""
        if self.runner is not None:
            self.runner.close()
        self._health_executor.shutdown(wait=False, cancel_futures=True)
        self.async_loop.stop()


async def _call_async(fn: Any, kwargs: dict[str, Any]) -> Any:
    return await fn(**kwargs)
