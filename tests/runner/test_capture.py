"""Per-prediction stdout/stderr/logging capture (spec §12)."""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import threading
from collections.abc import Iterator

import pytest

from nbcog.runner import capture
from nbcog.runner.capture import MAX_CHUNK_BYTES, TRUNCATION_NOTICE, LogCapture


class Kernel:
    """Stand-in kernel streams: the StringIOs that the routers wrap."""

    def __init__(self) -> None:
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()


@pytest.fixture(autouse=True)
def restore_streams() -> Iterator[None]:
    saved = sys.stdout, sys.stderr
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def fake_kernel() -> Kernel:
    """Make StringIOs the current streams and route them (in the test body: pytest's own
    capture re-sets sys.stdout between fixture setup and the test call)."""
    k = Kernel()
    sys.stdout, sys.stderr = k.stdout, k.stderr
    capture.install()
    return k


def summary(chunks: list[tuple[str, str]]) -> list[tuple[str, int, str, str]]:
    """(source, length, head, tail) of each chunk: exact, yet readable when 4 MiB long."""
    return [(source, len(text), text[:8], text[-48:]) for source, text in chunks]


def recorder() -> tuple[list[tuple[str, str]], LogCapture]:
    chunks: list[tuple[str, str]] = []
    return chunks, LogCapture(lambda source, text: chunks.append((source, text)))


def test_print_is_one_chunk() -> None:
    """print("a") writes "a" then "\\n" and yields the single chunk "a\\n"."""
    fake_kernel()
    chunks, cap = recorder()
    with cap:
        print("a")
    assert chunks == [("stdout", "a\n")]


def test_partial_writes_join_into_one_chunk() -> None:
    """Text without a newline waits for the write that completes the line."""
    fake_kernel()
    chunks, cap = recorder()
    with cap:
        sys.stdout.write("partial ")
        assert chunks == []
        sys.stdout.write("more\n")
    assert chunks == [("stdout", "partial more\n")]


def test_several_lines_in_one_write_are_one_chunk() -> None:
    """Everything up to the last newline of a write is one chunk; the rest waits."""
    fake_kernel()
    chunks, cap = recorder()
    with cap:
        sys.stdout.write("two\nlines\n")
        sys.stdout.write("x\ny\nhalf")
        assert chunks == [("stdout", "two\nlines\n"), ("stdout", "x\ny\n")]
        sys.stdout.write("-done\n")
    assert chunks == [("stdout", "two\nlines\n"), ("stdout", "x\ny\n"), ("stdout", "half-done\n")]


def test_streams_have_their_own_buffers_and_sources() -> None:
    """stdout and stderr buffer separately and are tagged with their source."""
    fake_kernel()
    chunks, cap = recorder()
    with cap:
        sys.stdout.write("out ")
        sys.stderr.write("err\n")
        sys.stdout.write("line\n")
        print("warn", file=sys.stderr)
    assert chunks == [
        ("stderr", "err\n"),
        ("stdout", "out line\n"),
        ("stderr", "warn\n"),
    ]


def test_deactivate_flushes_partial_lines() -> None:
    """A trailing partial line is emitted at the end, stdout before stderr."""
    fake_kernel()
    chunks, cap = recorder()
    cap.activate()
    sys.stderr.write("e-tail")
    sys.stdout.write("o-tail")
    assert chunks == []
    cap.deactivate()
    assert chunks == [("stdout", "o-tail"), ("stderr", "e-tail")]


def test_flush_partial_emits_pending_text_once() -> None:
    """flush_partial() emits pending text and leaves nothing to emit twice."""
    fake_kernel()
    chunks, cap = recorder()
    with cap:
        sys.stdout.write("progress 50%")
        cap.flush_partial()
        cap.flush_partial()
        sys.stdout.write("\n")
    assert chunks == [("stdout", "progress 50%"), ("stdout", "\n")]


def test_stream_flush_emits_partial_line_like_coglet() -> None:
    """sys.stdout.flush() inside a capture emits that stream's partial line only."""
    kernel = fake_kernel()
    chunks, cap = recorder()
    with cap:
        sys.stderr.write("err-part")
        print("\r10%", end="", flush=True)
        assert chunks == [("stdout", "\r10%")]
    assert chunks == [("stdout", "\r10%"), ("stderr", "err-part")]
    assert kernel.stdout.getvalue() == ""


def test_writes_outside_a_capture_pass_through() -> None:
    """With no active capture, writes reach the wrapped kernel stream unchanged."""
    kernel = fake_kernel()
    chunks, cap = recorder()
    print("before")
    with cap:
        print("inside")
    sys.stderr.write("after")
    assert kernel.stdout.getvalue() == "before\n"
    assert kernel.stderr.getvalue() == "after"
    assert chunks == [("stdout", "inside\n")]


def test_router_behaves_like_a_text_stream() -> None:
    """write returns len; encoding, isatty and fileno come from the wrapped stream."""
    wrapped = io.TextIOWrapper(io.BytesIO(), encoding="latin-1")
    sys.stdout, sys.stderr = wrapped, io.StringIO()
    capture.install()
    router = sys.stdout
    assert router is not wrapped
    assert router.encoding == "latin-1"
    assert router.isatty() is False
    with pytest.raises(io.UnsupportedOperation):
        router.fileno()
    assert router.write("héllo\n") == 6
    router.flush()
    assert wrapped.buffer.getvalue() == "héllo\n".encode("latin-1")
    chunks, cap = recorder()
    with cap:
        assert router.write("ça\n") == 3
        router.writelines(["a", "b\n"])
        with pytest.raises(TypeError, match=r"^write\(\) argument must be str, not bytes$"):
            router.write(b"x")
    assert chunks == [("stdout", "ça\n"), ("stdout", "ab\n")]


def test_install_is_idempotent() -> None:
    """A second install() keeps the same routers instead of wrapping them again."""
    kernel = fake_kernel()
    out, err = sys.stdout, sys.stderr
    capture.install()
    assert sys.stdout is out
    assert sys.stderr is err
    print("once")
    assert kernel.stdout.getvalue() == "once\n"


def test_install_wraps_a_replaced_stream() -> None:
    """If someone swaps sys.stdout (as %%capture does), install() wraps the newcomer."""
    kernel = fake_kernel()
    swapped = io.StringIO()
    sys.stdout = swapped
    capture.install()
    assert sys.stdout is not swapped
    chunks, cap = recorder()
    with cap:
        print("captured")
    print("through")
    assert chunks == [("stdout", "captured\n")]
    assert swapped.getvalue() == "through\n"
    assert kernel.stdout.getvalue() == ""


def test_two_threads_with_two_captures_stay_apart() -> None:
    """Interleaved prints from two worker threads land in their own captures."""
    kernel = fake_kernel()
    results: dict[str, list[tuple[str, str]]] = {}
    barrier = threading.Barrier(2, timeout=10)

    def work(name: str) -> None:
        chunks, cap = recorder()
        with cap:
            barrier.wait()
            for i in range(200):
                print(name, i)
                if i % 50 == 0:
                    barrier.wait()
        results[name] = chunks

    threads = [threading.Thread(target=work, args=(n,)) for n in ("A", "B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert results["A"] == [("stdout", f"A {i}\n") for i in range(200)]
    assert results["B"] == [("stdout", f"B {i}\n") for i in range(200)]
    assert kernel.stdout.getvalue() == ""


def test_two_asyncio_tasks_with_two_captures_stay_apart() -> None:
    """Tasks on one loop (and the tasks and threads they spawn) keep their own captures."""
    kernel = fake_kernel()

    async def child(name: str) -> None:
        print(name, "child")

    def in_thread(name: str) -> None:
        print(name, "thread")

    async def predict(name: str) -> list[tuple[str, str]]:
        chunks, cap = recorder()
        with cap:
            for i in range(3):
                sys.stdout.write(f"{name} ")
                await asyncio.sleep(0)
                sys.stdout.write(f"{i}\n")
                await asyncio.sleep(0)
            await asyncio.create_task(child(name))
            await asyncio.to_thread(in_thread, name)
        return chunks

    async def main() -> list[list[tuple[str, str]]]:
        return await asyncio.gather(predict("A"), predict("B"))

    a, b = asyncio.run(main())
    for name, chunks in (("A", a), ("B", b)):
        assert chunks == [
            ("stdout", f"{name} 0\n"),
            ("stdout", f"{name} 1\n"),
            ("stdout", f"{name} 2\n"),
            ("stdout", f"{name} child\n"),
            ("stdout", f"{name} thread\n"),
        ]
    assert kernel.stdout.getvalue() == ""


def test_orphan_task_writes_pass_through_after_deactivate() -> None:
    """A task that outlives its prediction writes to the kernel stream, not the old capture."""
    kernel = fake_kernel()

    async def main() -> list[tuple[str, str]]:
        release = asyncio.Event()

        async def orphan() -> None:
            await release.wait()
            print("late")

        chunks, cap = recorder()
        with cap:
            task = asyncio.create_task(orphan())
        release.set()
        await asyncio.wait_for(task, timeout=10)
        return chunks

    assert asyncio.run(main()) == []
    assert kernel.stdout.getvalue() == "late\n"


def test_logging_handlers_on_the_original_stream_are_captured() -> None:
    """A StreamHandler made before install() on the kernel stream is retargeted and captured."""
    kernel_err = io.StringIO()
    sys.stdout, sys.stderr = io.StringIO(), kernel_err
    logger = logging.getLogger("nbcog.test.capture")
    handler = logging.StreamHandler(kernel_err)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        capture.install()
        assert handler.stream is sys.stderr
        chunks, cap = recorder()
        with cap:
            logger.info("hello %s", "world")
        logger.warning("outside")
        assert chunks == [("stderr", "INFO hello world\n")]
        assert kernel_err.getvalue() == "WARNING outside\n"
    finally:
        logger.removeHandler(handler)


def test_logging_last_resort_is_captured() -> None:
    """With no handlers configured, logging.lastResort writes to the routed sys.stderr."""
    fake_kernel()
    logger = logging.getLogger("nbcog.test.lastresort")
    logger.propagate = False
    chunks, cap = recorder()
    with cap:
        logger.warning("no handlers")
    assert chunks == [("stderr", "no handlers\n")]


def test_chunk_at_the_limit_is_kept_whole() -> None:
    """A chunk of exactly 4 MiB of UTF-8 is not truncated."""
    fake_kernel()
    chunks, cap = recorder()
    text = "x" * (MAX_CHUNK_BYTES - 1) + "\n"
    with cap:
        sys.stdout.write(text)
    assert summary(chunks) == summary([("stdout", text)])
    assert chunks[0][1] == text


def test_oversized_chunk_is_truncated_like_coglet() -> None:
    """Over 4 MiB: the first 4 MiB - len(notice) bytes, then the notice (4 MiB in total)."""
    fake_kernel()
    chunks, cap = recorder()
    with cap:
        sys.stdout.write("x" * MAX_CHUNK_BYTES + "\nnext\n")
    expected = "x" * (MAX_CHUNK_BYTES - len(TRUNCATION_NOTICE)) + TRUNCATION_NOTICE
    assert summary(chunks) == summary([("stdout", expected)])
    assert chunks[0][1] == expected
    assert len(expected.encode()) == MAX_CHUNK_BYTES


def test_truncation_cuts_on_a_character_boundary() -> None:
    """Multi-byte text is cut before the character that would cross the byte limit."""
    fake_kernel()
    chunks, cap = recorder()
    with cap:
        sys.stderr.write("€" * 1_500_000)  # 3 bytes each: 4_500_000 bytes, no newline
    keep = (MAX_CHUNK_BYTES - len(TRUNCATION_NOTICE)) // 3
    assert keep == 1_398_088
    expected = "€" * keep + TRUNCATION_NOTICE
    assert summary(chunks) == summary([("stderr", expected)])
    assert chunks[0][1] == expected


def test_long_line_in_small_writes_is_truncated_and_next_line_kept() -> None:
    """A line built from many writes is cut once over the limit; the following line is intact."""
    fake_kernel()
    chunks, cap = recorder()
    piece = "y" * 65536
    with cap:
        for _ in range(80):  # 5 MiB without a newline
            sys.stdout.write(piece)
        sys.stdout.write("end\nnext")
    expected = "y" * (MAX_CHUNK_BYTES - len(TRUNCATION_NOTICE)) + TRUNCATION_NOTICE
    assert summary(chunks) == summary([("stdout", expected), ("stdout", "next")])
    assert chunks[0][1] == expected
