"""The pieces of nbcog.kernel that need no kernel: -i parsing, output display, ports, lag, loops.

Real objects throughout: real sockets, real event loops on real threads, a real server.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import threading
import time

import pytest
import requests
from helpers import wait_until

from nbcog.assembly import Server
from nbcog.core.encoding import data_url
from nbcog.core.inputs import example_input, parse_inputs
from nbcog.kernel.lag import LagMonitor
from nbcog.kernel.loop import block_on
from nbcog.kernel.ports import describe_holder, listening_processes, probe
from nbcog.kernel.render import FileOutput, Text, output_parts
from nbcog.runner.loopthread import LoopThread

TRIVIAL = """
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self) -> str:
        return "VALUE"
"""

SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string"},
        "count": {"type": "integer"},
        "scale": {"type": "number"},
        "flag": {"type": "boolean"},
        "image": {"type": "string", "format": "uri"},
        "images": {"type": "array", "items": {"type": "string", "format": "uri"}},
        "nums": {"type": "array", "items": {"type": "integer"}},
        "options": {"type": "object"},
        "color": {"allOf": [{"enum": ["red", "green"], "type": "string"}]},
        "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
    },
    "required": ["text", "color", "image", "count"],
}


# -- -i key=value ----------------------------------------------------------------------------


def test_inputs_are_typed_by_the_schema(tmp_path):
    """Numbers, booleans, JSON objects and unions are parsed; strings are kept as they are."""
    values = parse_inputs(
        [
            "text=1 + 1",
            "count=7",
            "scale=0.5",
            "flag=Yes",
            'options={"a": [1]}',
            "color=red",
            "either=3",
            "nums=1",
            "nums=[2, 3]",
        ],
        SCHEMA,
        tmp_path,
    )
    assert values == {
        "text": "1 + 1",
        "count": 7,
        "scale": 0.5,
        "flag": True,
        "options": {"a": [1]},
        "color": "red",
        "either": 3,
        "nums": [1, 2, 3],
    }
    assert parse_inputs(["scale=2", "flag=off", "either=two words"], SCHEMA) == {
        "scale": 2,
        "flag": False,
        "either": "two words",
    }


def test_file_inputs_become_data_urls(tmp_path):
    """A local path or @path for a file input is sent as a data URI; URLs pass unchanged."""
    (tmp_path / "pic.png").write_bytes(b"\x89PNG fake")
    (tmp_path / "notes.txt").write_text("from a file")
    values = parse_inputs(
        [
            "image=pic.png",
            "images=@pic.png",
            "images=https://example.com/b.jpg",
            f"images={tmp_path / 'notes.txt'}",
            "text=@notes.txt",
        ],
        SCHEMA,
        tmp_path,
    )
    png = data_url(b"\x89PNG fake", "image/png")
    assert values == {
        "image": png,
        "images": [png, "https://example.com/b.jpg", data_url(b"from a file", "text/plain")],
        "text": "from a file",
    }


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("text", "expected key=value, got 'text'"),
        ("=x", "expected key=value, got '=x'"),
        (
            "size=3",
            "unknown input 'size'; the inputs are: text, count, scale, flag, image, images, nums, "
            "options, color, either",
        ),
        ("count=3.5", "input 'count' takes an integer, not '3.5'"),
        ("scale=big", "input 'scale' takes a number, not 'big'"),
        ("flag=maybe", "input 'flag' takes true or false, not 'maybe'"),
        ("image=missing.png", "no such file: missing.png"),
        ("text=@missing.txt", "no such file: missing.txt"),
        ("nums=[1,", "input 'nums': '[1,' is not a JSON array"),
    ],
)
def test_bad_inputs_say_what_is_wrong(tmp_path, pair, message):
    """Malformed pairs, unknown inputs, unreadable files and mistyped values are ValueErrors."""
    with pytest.raises(ValueError) as raised:
        parse_inputs([pair], SCHEMA, tmp_path)
    assert str(raised.value) == message


def test_example_input_fills_the_required_fields():
    """The curl example has a placeholder per required input, by type."""
    assert example_input(SCHEMA) == {
        "text": "...",
        "color": "red",
        "image": "https://example.com/input.png",
        "count": 1,
    }


# -- showing outputs -------------------------------------------------------------------------


def test_text_and_json_outputs():
    """Strings show as text, concatenated iterators as one text, other JSON indented."""
    assert output_parts("hello") == [Text("hello")]
    assert output_parts(None) == []
    assert output_parts(["a", "b"], {"x-cog-array-display": "concatenate"}) == [Text("ab")]
    assert output_parts({"b": 1, "a": [True]}) == [Text('{\n  "a": [\n    true\n  ],\n  "b": 1\n}')]
    assert output_parts(["a", "b"]) == [Text('[\n  "a",\n  "b"\n]')]


def test_file_outputs_show_inline_or_as_links():
    """PNG goes in the mime bundle; audio and video get players; other files a download link."""
    png = data_url(b"\x89PNG", "image/png")
    wav = data_url(b"RIFF", "audio/wav")
    zipped = data_url(b"PK" * 600, "application/zip")
    parts = output_parts([png, wav, zipped])
    assert parts == [
        FileOutput(png, "image/png", 4, "output.png"),
        FileOutput(wav, "audio/wav", 4, "output.1.wav"),
        FileOutput(zipped, "application/zip", 1200, "output.2.zip"),
    ]
    assert parts[0]._repr_mimebundle_() == {
        "text/plain": "file: output.png (image/png, 4 B)",
        "image/png": base64.b64encode(b"\x89PNG").decode(),
    }
    assert parts[1]._repr_mimebundle_()["text/html"] == f'<audio controls src="{wav}"></audio>'
    assert parts[2]._repr_mimebundle_() == {
        "text/plain": "file: output.2.zip (application/zip, 1.2 kB)",
        "text/html": f'<a download="output.2.zip" href="{zipped}">'
        "output.2.zip (application/zip, 1.2 kB)</a>",
    }
    svg = data_url(b"<svg/>", "image/svg+xml")
    assert output_parts(svg)[0]._repr_mimebundle_()["image/svg+xml"] == "<svg/>"


def test_uploaded_file_urls_show_by_extension():
    """With an upload URL, outputs are http(s) URLs: a known extension makes them files."""
    (image,) = output_parts("https://bucket.example/out%20put.jpg?sig=1")
    assert image == FileOutput(
        "https://bucket.example/out%20put.jpg?sig=1", "image/jpeg", None, "out put.jpg"
    )
    assert image._repr_mimebundle_()["text/html"] == (
        '<img src="https://bucket.example/out%20put.jpg?sig=1" alt="out put.jpg"/>'
    )
    assert output_parts("https://example.com/") == [Text("https://example.com/")]


# -- ports -----------------------------------------------------------------------------------


def test_listening_processes_finds_this_process():
    """/proc tells which process listens on a port; none once it is closed."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        found = listening_processes(port)
        assert [pid for pid, _ in found] == [os.getpid()]
        assert "python" in found[0][1]
        assert describe_holder("127.0.0.1", port) == (
            "this process (a listener not started by %cog serve or nbcog.serve)"
        )
    assert listening_processes(port) == []


def test_probe_tells_an_nbcog_server(serve_source):
    """GET /health-check names an nbcog server; a silent listener is nothing we know."""
    with serve_source(TRIVIAL.replace("VALUE", "")) as s:
        port = int(s.url.rsplit(":", 1)[1])
        assert probe("127.0.0.1", port) == "nbcog 0.1.0"
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        assert probe("127.0.0.1", silent.getsockname()[1], timeout=0.2) is None


# -- loops -----------------------------------------------------------------------------------


def test_lag_monitor_sees_a_blocked_loop():
    """A callback that blocks the loop shows as lag at least as long as the block."""
    runner = LoopThread("nbcog-test-lag")
    try:
        loop = runner.loop
        monitor = LagMonitor(loop, interval=0.01, window=60.0)
        runner.call(monitor.start)
        runner.call(lambda: time.sleep(0.3))  # the loop itself is blocked: the behaviour measured
        wait_until(lambda: monitor.lag.worst >= 0.25, "the lag to show")
        runner.call(monitor.stop)
    finally:
        runner.stop()
    assert not loop.is_running()
    assert loop.is_closed()


def test_block_on_from_another_thread_delivers_items_in_order():
    """block_on waits for a coroutine on another thread's loop; emitted items reach this thread."""
    runner = LoopThread("nbcog-test-block")
    seen: list[tuple[str, str]] = []

    async def work(emit):
        for item in ("a", "b", "c"):
            emit(item)
            await asyncio.sleep(0)
        return threading.current_thread().name

    try:
        result = block_on(
            runner.loop, work, lambda item: seen.append((item, threading.current_thread().name))
        )
    finally:
        runner.stop()
    assert result == "nbcog-test-block"
    assert seen == [(item, threading.current_thread().name) for item in "abc"]


def test_reloadable_server_keeps_its_port(tmp_path):
    """reload() swaps the predictor on the same socket; stop() frees the port."""
    one = tmp_path / "one.py"
    one.write_text(TRIVIAL.replace("VALUE", "one"))
    two = tmp_path / "two.py"
    two.write_text(TRIVIAL.replace("VALUE", "two"))
    runner = LoopThread("nbcog-test-reload")
    server = Server(f"{one}:Predictor", port=0)
    try:
        runner.call(server.start)
        url = server.url
        assert wait_for_output(url) == "one"
        assert runner.call(lambda: server.reload(f"{two}:Predictor")) == []
        assert server.url == url
        assert wait_for_output(url) == "two"
    finally:
        runner.call(server.stop)
        runner.stop()
    with socket.socket() as probe_socket:
        assert probe_socket.connect_ex(("127.0.0.1", server.port)) != 0


def wait_for_output(url):
    """The output of a sync prediction once the server is READY."""
    wait_until(lambda: requests.get(url + "/health-check", timeout=10).json()["status"] == "READY")
    return requests.post(url + "/predictions", json={}, timeout=30).json()["output"]


def test_magic_lines_drop_trailing_comments_only():
    """A trailing '# comment' is dropped; '#' inside a word or quotes is kept."""
    from nbcog.kernel.magics import strip_comment

    assert strip_comment("Predictor  # serve it") == "Predictor  "
    assert strip_comment("-i tag=a#b") == "-i tag=a#b"
    assert strip_comment("-i q='# not a comment' # but this is") == "-i q='# not a comment' "
    assert strip_comment('-i q="#x"') == '-i q="#x"'
    assert strip_comment("# all comment") == ""
