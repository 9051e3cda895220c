"""Running one prediction: inputs in, events out, on a worker thread or the async loop.

A ``Job`` is one prediction or training. The runner turns everything the predictor does into
events put on the job's pipe, in production order: ``start``, then ``output``/``log``/``metric``
as they happen, then a ``Finished`` item saying how it ended. The serving loop folds these into
the ``Prediction`` (it alone owns that state).

Cancellation (spec §14): a sync predictor gets ``cog.CancelationException`` raised
asynchronously in its thread (``PyThreadState_SetAsyncExc``), which Python delivers at the next
bytecode boundary: a loop or a generator stops within milliseconds, but a long blocking C
call (``time.sleep(30)``, a big matrix multiply, a socket read) finishes first, and the
exception fires right after it returns. An async predictor's task is cancelled
(``asyncio.CancelledError`` at its current ``await``). Once a cancel has been requested the
prediction ends ``canceled`` however predict() exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import io
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from nbcog.core import events
from nbcog.core.encoding import non_finite_error
from nbcog.core.errors import describe_exception
from nbcog.core.events import Event
from nbcog.core.prediction import Status
from nbcog.core.strictjson import scrub_surrogates
from nbcog.runner import capture
from nbcog.runner.cog_adapter import CancelationException, HandlerInfo
from nbcog.runner.files import InputFiles, OutputFiles, UploadError
from nbcog.runner.loopthread import LoopThread
from nbcog.runner.scope import PredictionScope, scope_active
from nbcog.runner.tracebacks import user_traceback_lines

_PLAIN_JSON = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class Finished:
    """The last item a job puts on its pipe: how the prediction ended."""

    status: Status
    error: str | None = None
    output_is_array: bool = False
    traceback: str | None = None


def internal_failure(job: Job, exc: BaseException) -> Finished:
    """How a job ends when nbcog's own code around predict() raised: failed, never stuck."""
    if job.cancel_requested:
        return Finished(Status.CANCELED)
    noun = "Training" if job.training else "Prediction"
    return Finished(
        Status.FAILED,
        f"{noun} failed: internal error: {describe_exception(exc)}",
        traceback=_format_traceback(exc),
    )


@dataclass(eq=False)
class Job:
    """One prediction or training handed to the runner.

    ``put`` is thread-safe (an ``EventPipe``); everything else here is written by the runner
    thread running the job, except ``cancel_requested``, which any thread may set through
    ``Runner.cancel``.
    """

    prediction_id: str
    handler: HandlerInfo
    values: dict[str, Any]
    put: Callable[[Event | Finished], None]
    context: dict[str, str] = field(default_factory=dict)
    training: bool = False
    upload_url: str | None = None
    cancel_requested: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread_ident: int | None = None
    _task: asyncio.Task[None] | None = None
    _loop: asyncio.AbstractEventLoop | None = None


class _Outputs:
    """Encodes chunks and remembers whether the final output is an array."""

    def __init__(self, job: Job, files: OutputFiles) -> None:
        self._job = job
        self._files = files
        self.index = 0
        self.is_array = job.handler.output_is_array

    def emit(self, value: Any) -> None:
        encoded = value if type(value) in _PLAIN_JSON else self._files.encode_chunk(value)
        event = events.output_event(encoded, self.index)
        # json writes NaN/Infinity, which is not JSON: fail as coglet does, never send it.
        # A str chunk is quoted whole, so it cannot hold one; skipping it spares a regex scan
        # of the whole chunk whenever a token or base64 data URL merely contains "NaN".
        if not isinstance(encoded, str) and (b"NaN" in event.wire or b"Infinity" in event.wire):
            problem = non_finite_error(encoded)
            if problem is not None:
                raise _RejectedOutput(f"Prediction failed: Failed to parse output JSON: {problem}")
        self._job.put(event)
        self.index += 1

    def emit_result(self, result: Any) -> None:
        """A returned value: a list or tuple is one chunk per element, None is no chunk."""
        if isinstance(result, (list, tuple)):
            self.is_array = True
            for item in result:
                self.emit(item)
        elif result is not None:
            self.emit(result)


class _SerializeError(Exception):
    """An output chunk could not be encoded as JSON."""


class _RejectedOutput(Exception):
    """An encoded chunk is not valid JSON (NaN, Infinity); ``str(exc)`` is the error."""


def _failure(prefix: str, exc: BaseException) -> str:
    return f"Prediction failed: {prefix}{describe_exception(exc)}"


class Runner:
    """Runs jobs: sync handlers on worker threads (one per slot), async ones on one loop thread.

    Args:
        slots: how many predictions may run at once (the service enforces it).
        async_loop: the shared async predictor loop.
    """

    def __init__(self, *, slots: int, async_loop: LoopThread) -> None:
        self._async_loop = async_loop
        # Threads are reused across predictions (starting one per prediction costs ~0.1 ms
        # of the sync latency budget); the service never starts more jobs than slots. They
        # are daemon threads so a predictor stuck in C code cannot keep a CLI from exiting.
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._serve_queue, name=f"nbcog-predict-{n}", daemon=True)
            for n in range(slots)
        ]
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        """Let the worker threads exit once their current job (if any) is done."""
        for _ in self._threads:
            self._queue.put(None)

    def _serve_queue(self) -> None:
        while (job := self._queue.get()) is not None:
            self._run_sync(job)

    # -- public ------------------------------------------------------------------------

    def start(self, job: Job) -> None:
        """Begin running ``job``; returns at once."""
        if job.handler.is_async or job.handler.is_async_gen:
            job._loop = self._async_loop.loop
            self._async_loop.submit(self._run_async(job))
            return
        self._queue.put(job)

    @staticmethod
    def cancel(job: Job) -> None:
        """Request cancellation; safe from any thread, repeatable, and a no-op once done."""
        with job._lock:
            job.cancel_requested = True
            ident = job._thread_ident
            if ident is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(ident), ctypes.py_object(CancelationException)
                )
        if job._task is not None and job._loop is not None:
            job._loop.call_soon_threadsafe(job._task.cancel)

    # -- sync --------------------------------------------------------------------------

    def _run_sync(self, job: Job) -> None:
        # Whatever goes wrong around predict() (an id no encoder can write, a bug here), the
        # job still ends: the thread lives on and the slot is freed by the Finished item.
        try:
            resources = _PredictionResources(job)
            try:
                with resources:
                    result = self._call_sync(job, resources)
            finally:
                resources.inputs.cleanup()
        except BaseException as exc:
            self._leave_user_code(job)
            result = internal_failure(job, exc)
        job.put(result)

    def _call_sync(self, job: Job, resources: _PredictionResources) -> Finished:
        handler, outputs = job.handler, resources.outputs
        prefix = "Training failed: " if job.training else "Prediction failed: "
        try:
            kwargs = handler.coerce(job.values, resources.inputs.download)
        except Exception as exc:
            if job.cancel_requested:  # the download stopped because of the cancel
                return Finished(Status.CANCELED)
            return Finished(Status.FAILED, str(exc))
        try:
            self._enter_user_code(job)
            try:
                result = handler.fn(**kwargs)
                if _is_stream(result):
                    outputs.is_array = True
                    prefix = "Generator iteration error: "
                    for item in result:
                        _emit_or_raise(outputs, item)
                else:
                    _emit_all_or_raise(outputs, result)
            finally:
                self._leave_user_code(job)
        except BaseException as exc:
            # A cancel can fire between predict()'s return and the finally's lock, leaving the
            # thread marked as in user code: unmark it before another cancel lands in the runner.
            self._leave_user_code(job)
            return _ending(job, outputs, prefix, exc)
        return _ending(job, outputs, prefix)

    @staticmethod
    def _enter_user_code(job: Job) -> None:
        with job._lock:
            job._thread_ident = threading.get_ident()
            pending_cancel = job.cancel_requested
        if pending_cancel:
            raise CancelationException

    @staticmethod
    def _leave_user_code(job: Job) -> None:
        """Stop accepting async cancels, and drop one that was set but not yet delivered."""
        with job._lock:
            ident, job._thread_ident = job._thread_ident, None
            if ident is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)

    # -- async -------------------------------------------------------------------------

    async def _run_async(self, job: Job) -> None:
        job._task = asyncio.current_task()
        try:
            resources = _PredictionResources(job)
            try:
                with resources:
                    result = await self._call_async(job, resources)
            finally:
                cleanup = asyncio.get_running_loop().run_in_executor(None, resources.inputs.cleanup)
                # A repeated cancel landing here must not end the task before the result is put.
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(cleanup)
        except BaseException as exc:
            result = internal_failure(job, exc)
        job.put(result)

    async def _call_async(self, job: Job, resources: _PredictionResources) -> Finished:
        handler, outputs = job.handler, resources.outputs
        prefix = "Async training failed: " if job.training else "Async prediction failed: "
        loop = asyncio.get_running_loop()
        try:
            kwargs = await loop.run_in_executor(
                None, handler.coerce, job.values, resources.inputs.download
            )
        except asyncio.CancelledError:
            return Finished(Status.CANCELED)
        except Exception as exc:
            if job.cancel_requested:
                return Finished(Status.CANCELED)
            return Finished(Status.FAILED, str(exc))
        try:
            if job.cancel_requested:
                raise asyncio.CancelledError
            if handler.is_async_gen:
                outputs.is_array = True
                async for item in handler.fn(**kwargs):
                    _emit_or_raise(outputs, item)
            else:
                _emit_all_or_raise(outputs, await handler.fn(**kwargs))
        except BaseException as exc:
            return _ending(job, outputs, prefix, exc)
        return _ending(job, outputs, prefix)


class _PredictionResources:
    """What one prediction owns while it runs: log capture, metric scope, input/output files.

    Entering captures logs and activates the scope in the current thread (or task) and puts
    the ``start`` event; leaving flushes partial log lines and removes output temp files. The
    caller removes input downloads (off the async loop, for async predictors).
    """

    def __init__(self, job: Job) -> None:
        capture.install()
        self._job = job
        self._log = capture.LogCapture(lambda source, text: job.put(events.log_event(source, text)))
        self._scope = scope_active(PredictionScope(job.put, job.context))
        self.inputs = InputFiles(lambda: job.cancel_requested)
        self._files = OutputFiles(job.upload_url)
        self.outputs = _Outputs(job, self._files)

    def __enter__(self) -> _PredictionResources:
        # Encoded before anything is activated: if it raises, there is nothing to undo.
        start = events.start_event(self._job.prediction_id)
        self._log.activate()
        self._scope.__enter__()
        self._job.put(start)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._scope.__exit__(None, None, None)
        self._log.deactivate()
        self._files.close()


def _ending(job: Job, outputs: _Outputs, prefix: str, exc: BaseException | None = None) -> Finished:
    """How a prediction ended, given what predict() raised (None: it returned).

    Once a cancel has been requested the prediction is canceled however predict() exits
    (spec §14); otherwise the exception picks the error string of spec §9.4.
    """
    if job.cancel_requested or isinstance(exc, (CancelationException, asyncio.CancelledError)):
        return Finished(Status.CANCELED, output_is_array=outputs.is_array)
    if exc is None:
        return Finished(Status.SUCCEEDED, output_is_array=outputs.is_array)
    if isinstance(exc, _SerializeError):
        cause = exc.__cause__ or exc
        return Finished(Status.FAILED, _failure("Failed to serialize output: ", cause))
    if isinstance(exc, (UploadError, _RejectedOutput)):
        return Finished(Status.FAILED, str(exc))
    return Finished(Status.FAILED, _failure(prefix, exc), outputs.is_array, _format_traceback(exc))


def _is_stream(result: Any) -> bool:
    """A returned generator or iterator is consumed chunk by chunk (files are not streams)."""
    return isinstance(result, Iterator) and not isinstance(result, io.IOBase)


def _format_traceback(exc: BaseException) -> str:
    """The traceback for displays (the widget, the notebook, the CLI's terminal), from the
    user's first frame on; it is not part of Cog's wire format. Lone surrogates become U+FFFD."""
    return scrub_surrogates("".join(user_traceback_lines(exc)))


def _emit_or_raise(outputs: _Outputs, item: Any) -> None:
    try:
        outputs.emit(item)
    except (TypeError, ValueError) as exc:
        raise _SerializeError from exc


def _emit_all_or_raise(outputs: _Outputs, result: Any) -> None:
    try:
        outputs.emit_result(result)
    except (TypeError, ValueError) as exc:
        raise _SerializeError from exc
