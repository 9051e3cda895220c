"""Per-prediction capture of ``sys.stdout``/``sys.stderr`` writes (spec §12).

Inside a Jupyter kernel the standard streams are ipykernel ``OutStream`` objects that belong to
the kernel (and ``%%capture`` may swap them for a while), so nbcog never replaces them for the
length of a prediction. ``install()`` instead puts a *router* in front of whatever is there. A
router asks one ``ContextVar`` whether a capture is active for the calling code:

* a sync predictor's worker thread activates its prediction's ``LogCapture`` for the call;
* an async predictor's task activates it too, and the tasks it spawns (and ``asyncio.to_thread``
  calls) inherit a copy of the context, so concurrent predictions on one loop stay apart;
* everything else (notebook cells, the serving loop, threads the predictor starts itself) has no
  capture, and its writes go to the wrapped stream unchanged.

Text is always valid Unicode: a lone surrogate (what ``os.fsdecode`` makes of undecodable
bytes) becomes U+FFFD in the chunk, so logs can always be encoded and sent.

Only Python-level writes are seen: ``os.write(1, ...)``, subprocesses and C code bypass
``sys.stdout`` and are not captured, as the spec requires.

Chunking matches coglet's ``SlotLogWriter``: each stream buffers text until it holds a newline,
then emits everything up to and including the *last* newline as one chunk, so ``print("a")``
(two writes, ``"a"`` and ``"\\n"``) is one chunk ``"a\\n"``. Like coglet, ``flush()`` on the
stream emits a pending partial line, so progress bars that write ``"\\r..."`` and flush show up.
Unlike coglet (spec §21, quirk 2) the partial line left at the end is flushed into *this*
prediction's logs instead of leaking into the next one's.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from types import TracebackType
from typing import Any, TextIO

from nbcog.core.strictjson import scrub_surrogates

__all__ = ["MAX_CHUNK_BYTES", "TRUNCATION_NOTICE", "LogCapture", "install", "truncate_chunk"]

MAX_CHUNK_BYTES = 4 * 1024 * 1024
TRUNCATION_NOTICE = "[**** LOG LINE TRUNCATED AT 4 MiB ****]"

# A UTF-8 character takes at most 4 bytes, so text this short never needs truncating and the
# common case skips encoding the chunk just to measure it.
_ALWAYS_FITS = MAX_CHUNK_BYTES // 4
_KEEP_BYTES = MAX_CHUNK_BYTES - len(TRUNCATION_NOTICE)

STDOUT = "stdout"
STDERR = "stderr"

_current: ContextVar[LogCapture | None] = ContextVar("nbcog_log_capture", default=None)


def truncate_chunk(text: str) -> str:
    """Cut a chunk whose UTF-8 encoding exceeds 4 MiB, exactly as coglet's ``truncate_worker_log``.

    coglet keeps the longest prefix that ends on a character boundary within
    ``4 MiB - len(notice)`` bytes and appends the notice, so the result is at most 4 MiB of
    UTF-8. Lone surrogates (possible in Python strings, never in Rust's) are counted as the
    3 bytes ``surrogatepass`` gives them rather than raising.
    """
    if len(text) <= _ALWAYS_FITS:
        return text
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= MAX_CHUNK_BYTES:
        return text
    cut = _KEEP_BYTES
    while cut > 0 and data[cut] & 0xC0 == 0x80:  # step back off UTF-8 continuation bytes
        cut -= 1
    return data[:cut].decode("utf-8", "surrogatepass") + TRUNCATION_NOTICE


class _LineBuffer:
    """One stream's pending text (everything after the last newline written so far).

    Memory stays bounded: once the pending text is certainly over the limit it is cut right
    away (``overflowed``) and further text up to the next newline is dropped, since the chunk
    it belongs to will be truncated to the same prefix anyway.
    """

    __slots__ = ("overflowed", "parts", "size")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.overflowed = False

    def add(self, text: str) -> None:
        """Append text that holds no newline."""
        if self.overflowed or not text:
            return
        self.parts.append(text)
        self.size += len(text)
        # Characters are at least one byte each, so this many characters is surely too long.
        if self.size > MAX_CHUNK_BYTES:
            self.parts = [truncate_chunk("".join(self.parts))]
            self.overflowed = True

    def take(self, tail: str = "") -> str:
        """Empty the buffer, returning its text followed by ``tail``, truncated if too long."""
        if self.overflowed:
            chunk = self.parts[0]  # already cut and carrying the notice
        elif self.parts:
            self.parts.append(tail)
            chunk = truncate_chunk("".join(self.parts))
        else:
            chunk = truncate_chunk(tail)
        self.parts = []
        self.size = 0
        self.overflowed = False
        return chunk


class LogCapture:
    """Collects one prediction's (or one ``setup()``'s) stdout and stderr into chunks.

    Args:
        sink: called as ``sink(source, text)`` with ``source`` ``"stdout"`` or ``"stderr"`` for
            every chunk, on the thread that wrote it and outside any capture lock. It must not
            write to ``sys.stdout``/``sys.stderr`` itself.

    Activate it in the context that runs the predictor, with ``with capture:`` or
    ``activate()``/``deactivate()``; both must happen in the same thread or task (a ``ContextVar``
    token is reset). Writes from several threads sharing the context (``asyncio.to_thread``) are
    serialised by a lock. After ``deactivate()`` the capture is closed: code that still holds its
    context (an orphaned task) writes to the original streams again, as coglet does.
    """

    __slots__ = ("_buffers", "_lock", "_sink", "_token", "active")

    def __init__(self, sink: Callable[[str, str], None]) -> None:
        self._sink = sink
        self._lock = threading.Lock()
        self._buffers = {STDOUT: _LineBuffer(), STDERR: _LineBuffer()}
        self._token: contextvars.Token[LogCapture | None] | None = None
        self.active = False

    def activate(self) -> None:
        """Route this context's stdout/stderr writes here (call ``install()`` first)."""
        self._token = _current.set(self)
        self.active = True

    def deactivate(self) -> None:
        """Flush partial lines and stop capturing; the context's previous capture returns."""
        self.active = False
        self.flush_partial()
        if self._token is not None:
            _current.reset(self._token)
            self._token = None

    def __enter__(self) -> LogCapture:
        self.activate()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.deactivate()

    def write(self, source: str, text: str) -> None:
        """Buffer ``text`` for ``source`` and emit a chunk if it completes a line."""
        buffer = self._buffers[source]
        last_newline = text.rfind("\n")
        with self._lock:
            if last_newline < 0:
                buffer.add(text)
                return
            chunk = buffer.take(text[: last_newline + 1])
            buffer.add(text[last_newline + 1 :])
        self._sink(source, scrub_surrogates(chunk))

    def flush_source(self, source: str) -> None:
        """Emit ``source``'s partial line, if any, as a chunk."""
        buffer = self._buffers[source]
        with self._lock:
            if not buffer.parts:
                return
            chunk = buffer.take()
        self._sink(source, scrub_surrogates(chunk))

    def flush_partial(self) -> None:
        """Emit both streams' partial lines (stdout first): the prediction is ending."""
        self.flush_source(STDOUT)
        self.flush_source(STDERR)


class _Router:
    """Stands in for ``sys.stdout``/``sys.stderr``: captures or passes each write through.

    Everything a text stream has besides writing (``encoding``, ``fileno``, ``isatty``,
    ``closed``, ...) is the wrapped stream's, through ``__getattr__``, so libraries probing
    the stream see the kernel's (or the terminal's) answers.
    """

    # "__dict__": IPython >= 9 wraps ``sys.stdout.write`` for each cell by assigning the
    # attribute (``InteractiveShell._tee``); without it every cell fails once we are installed.
    __slots__ = ("__dict__", "_source", "wrapped")

    def __init__(self, source: str, wrapped: TextIO) -> None:
        self._source = source
        self.wrapped = wrapped

    def write(self, text: str) -> int:
        """Capture ``text`` if a capture is active here, else write it to the wrapped stream."""
        capture = _current.get()
        if capture is None or not capture.active:
            return self.wrapped.write(text)
        if not isinstance(text, str):
            msg = f"write() argument must be str, not {type(text).__name__}"
            raise TypeError(msg)
        capture.write(self._source, text)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        """Write each line in turn, so that captured lines are chunked like ``write``."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Emit a captured partial line, or flush the wrapped stream when not capturing.

        A capturing thread never flushes the kernel's stream: ipykernel's ``OutStream.flush``
        from a non-IO thread waits on the kernel's IO thread, and nothing was written to it.
        """
        capture = _current.get()
        if capture is None or not capture.active:
            self.wrapped.flush()
        else:
            capture.flush_source(self._source)

    def __getattr__(self, name: str) -> Any:
        if name == "wrapped":  # not set yet (copy, unpickling): avoid endless recursion
            raise AttributeError(name)
        return getattr(self.wrapped, name)


def install() -> None:
    """Put routers in front of ``sys.stdout`` and ``sys.stderr`` unless they already are routers.

    Called at the start of every prediction, so the check is one ``isinstance`` per stream. If
    something replaced a stream since the last call, the new object gets wrapped too, and
    ``logging.StreamHandler``s writing to it are pointed at the router so ``logging`` output
    from predictors is captured. (``logging.lastResort`` looks ``sys.stderr`` up at emit time
    and needs nothing.) A missing stream (``None``) is left alone.
    """
    for name, source in (("stdout", STDOUT), ("stderr", STDERR)):
        stream = getattr(sys, name)
        if stream is None or isinstance(stream, _Router):
            continue
        router = _Router(source, stream)
        setattr(sys, name, router)
        _retarget_handlers(stream, router)


def _retarget_handlers(stream: TextIO, router: _Router) -> None:
    """Point every ``StreamHandler`` that writes to ``stream`` at ``router`` instead.

    The stream is assigned directly rather than with ``setStream``, which would flush the
    kernel's stream first for no benefit.
    """
    loggers: list[Any] = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):  # PlaceHolders have no handlers
            if isinstance(handler, logging.StreamHandler) and handler.stream is stream:
                handler.stream = router
