"""PredictionView against a real served predictor: synced state, deltas, cost, recovery (issue 5).

Widgets are built on the server's loop thread (``RunningServer.call``), as a notebook cell
would build them on the kernel's loop, and talk to a kernel-less ``RecordingComm``.
"""

from __future__ import annotations

import ast
import base64
import itertools
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import wait_until
from widget_helpers import (
    Frontend,
    on_loop,
    recording_comms,  # noqa: F401 - fixture
    serve_file,
    updates,
)

from nbcog.service import CreateRequest, Mode
from nbcog.widget import PredictionView
from nbcog.widget.view import FLUSH_INTERVAL

pytestmark = pytest.mark.usefixtures("recording_comms")

STREAM = """
from cog import BaseRunner, ConcatenateIterator, streaming

class Predictor(BaseRunner):
    @streaming
    def run(self, n: int = 5, fail: bool = False) -> ConcatenateIterator[str]:
        print("warming up")
        self.record_metric("phase", "generate")
        for i in range(n):
            self.record_metric("tokens", 1, "incr")
            yield f"t{i} "
        self.record_metric("timing.total", 1.5)
        self.record_metric("seen", "a", "append")
        print("done generating")
        if fail:
            raise ValueError("boom")
"""

MANY = """
from cog import BaseRunner, ConcatenateIterator, streaming

class Predictor(BaseRunner):
    @streaming
    def run(self, n: int = 100000) -> ConcatenateIterator[str]:
        print("start")
        for i in range(n):
            yield "tok "
        self.record_metric("tokens", n)
        print("end")
"""

GATED = """
import os
import time
from cog import BaseRunner, ConcatenateIterator, streaming

class Predictor(BaseRunner):
    @streaming
    def run(self, gate: str) -> ConcatenateIterator[str]:
        print("first line")
        yield "before "
        deadline = time.monotonic() + 60
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.01)
        print("second line")
        yield "after"
"""

TWO_GATES = """
import os
import time
from cog import BaseRunner, ConcatenateIterator, streaming

def wait(path):
    deadline = time.monotonic() + 60
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)

class Predictor(BaseRunner):
    @streaming
    def run(self, gate: str) -> ConcatenateIterator[str]:
        print("first line")
        yield "before "
        wait(gate + "1")
        print("second line")
        yield "middle "
        wait(gate + "2")
        yield "after"
"""

MEDIA = """
import io
import struct
import zlib
from typing import Iterator
from cog import BaseRunner, Path

def png() -> bytes:
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\\x00\\xff\\x00\\x00")
    body = chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    return b"\\x89PNG\\r\\n\\x1a\\n" + body

class Predictor(BaseRunner):
    def run(self) -> Iterator[Path]:
        image = Path(__file__).with_name("dot.png")  # in the test's tmp_path, never the cwd
        image.write_bytes(png())
        yield image
        other = Path(__file__).with_name("notes.bin")
        other.write_bytes(b"\\x00\\x01")
        yield other
"""

JSON_OUT = """
from cog import BaseModel, BaseRunner

class Out(BaseModel):
    label: str
    score: float

class Predictor(BaseRunner):
    def run(self) -> Out:
        return Out(label="cat", score=0.5)
"""


def _create(running, payload, mode=Mode.ASYNC):
    service = running.server.service
    return service.create(CreateRequest(input=payload), mode=mode)


def _start_view(running, payload, **options):
    """Create a prediction and its view in one loop turn (as a cell would)."""
    service = running.server.service

    def start():
        entry = _create(running, payload)
        return PredictionView(entry, service, base_url=running.url, **options)

    return on_loop(running, start)


def _wait_done(running, view):
    wait_until(lambda: on_loop(running, lambda: view.done), what="the view to finish")


def test_final_state_holds_output_logs_metrics_and_status(tmp_path):
    """After a streamed prediction the synced traits hold all output, logs, metrics and status."""
    with serve_file(tmp_path, STREAM) as running:
        view = _start_view(running, {"n": 5})
        _wait_done(running, view)
        state = on_loop(running, view.get_state)
    assert state["status"] == "succeeded"
    assert state["output_text"] == "t0 t1 t2 t3 t4 "
    assert state["logs"] == "warming up\ndone generating\n"
    metrics = dict(state["metrics"])
    assert metrics.pop("predict_time") > 0
    assert metrics == {"phase": "generate", "tokens": 5, "timing": {"total": 1.5}, "seen": ["a"]}
    assert state["metric_modes"] == {
        "phase": "replace",
        "tokens": "increment",
        "timing.total": "replace",
        "seen": "append",
    }
    assert state["output_count"] == 5
    assert state["error"] == ""
    assert state["done"] is True
    assert state["completed_ms"] >= state["created_ms"]
    events = [row["event"] for row in state["timeline"]]
    assert events[0] == "status" and events[-1] == "completed"
    assert "output" in events and "log" in events and "metric" in events
    assert state["notices"] == []


def timers_on(loop: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Record the arguments of every ``call_later`` on ``loop`` from now on."""
    timers: list[tuple[Any, ...]] = []
    call_later = loop.call_later

    def recording(delay: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
        timers.append((callback, *args))
        return call_later(delay, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_later", recording)
    return timers


def test_100k_token_stream_is_coalesced_and_linear(tmp_path, monkeypatch):
    """100,000 tokens: updates on the view's flush timer, bytes linear in the output, no lag."""
    with serve_file(tmp_path, MANY) as running:
        timers = timers_on(running.loop, monkeypatch)
        view = _start_view(running, {"n": 100_000})
        view._handle_custom_msg({"kind": "sync"}, [])  # a view rendering right away
        _wait_done(running, view)
        sent = updates(view)
        state = on_loop(running, view.get_state)
    text = "tok " * 100_000
    assert state["output_text"] == text
    assert state["status"] == "succeeded"
    assert state["notices"] == []
    custom = [m for m in sent if m.method == "custom"]
    deltas = [m for m in custom if m.content["kind"] == "delta"]
    total = sum(m.size for m in sent)
    flushes = sum(any(getattr(a, "__self__", None) is view for a in t) for t in timers)
    print(
        f"\n100k tokens: {len(sent)} messages ({len(deltas)} deltas, "
        f"{len(custom) - len(deltas)} full, {len(sent) - len(custom)} state updates) "
        f"on {flushes} flush timers, {total} bytes for {len(text)} bytes of text"
    )
    # Coalesced: each delta is one flush timer's, and the final traits are the last one's; the
    # "full" answer to a sync request is the one message sent off the timer's beat. Timers are
    # FLUSH_INTERVAL apart (their spacing, checked by the loop's clock, is not a speed bound).
    full = [m for m in custom if m.content["kind"] == "full"]
    assert len(full) == 1
    assert len(deltas) + 1 <= flushes
    assert len(sent) <= flushes + len(full) + 1
    assert len(sent) <= 100_000 // 100, "far fewer messages than tokens"
    gaps = [b.at - a.at for a, b in itertools.pairwise(sent[sent.index(full[0]) + 1 :])]
    assert gaps and min(gaps) >= FLUSH_INTERVAL * 0.95
    # Linear: the text travels once in deltas and once in the final traits.
    assert total <= 2 * len(text) + 100_000
    # Every message was sent by the loop thread that owns the widget.
    threads = {m.thread for m in view.comm.sent}
    assert threads == {"nbcog-test-server"}
    # A browser folding these messages ends with the whole output.
    frontend = Frontend()
    frontend.receive_all(view.comm.sent)
    assert frontend.state is not None and frontend.state["output_text"] == text
    streamed = frontend.before_final
    assert streamed is not None and streamed["output_text"]
    assert text.startswith(streamed["output_text"]), "deltas arrive in order, once each"


def test_view_rendered_mid_stream_recovers_the_full_state(tmp_path):
    """A view that asks for the state mid-stream gets everything so far, then only what follows."""
    gate = tmp_path / "gate"
    with serve_file(tmp_path, GATED) as running:
        view = _start_view(running, {"gate": str(gate)})
        wait_until(
            lambda: any(
                m.method == "custom" and "before" in m.content.get("output_text", "")
                for m in updates(view)
            ),
            what="the first token to be sent",
        )
        threading.Thread(target=view._handle_custom_msg, args=({"kind": "sync"}, [])).start()
        full = wait_until(
            lambda: next(
                (m.content for m in updates(view) if m.content.get("kind") == "full"), None
            ),
            what="the full state",
        )
        assert full["state"]["output_text"] == "before "
        assert full["state"]["logs"] == "first line\n"
        assert full["state"]["status"] == "processing"
        gate.write_text("go")
        _wait_done(running, view)
        state = on_loop(running, view.get_state)
    # A view rendered then ignores earlier deltas, takes the full state, then what follows.
    late = Frontend()
    late.receive_all(view.comm.sent)
    assert late.before_final is not None
    assert late.before_final["output_text"] in ("before ", "before after")
    assert late.state["output_text"] == "before after" == state["output_text"]
    assert late.state["logs"] == "first line\nsecond line\n" == state["logs"]


def test_view_opens_with_the_state_so_far_and_streams_without_asking(tmp_path):
    """A view made mid-stream opens with the output so far; deltas follow with no sync request."""
    gate = tmp_path / "gate"
    with serve_file(tmp_path, TWO_GATES) as running:
        entry = on_loop(running, lambda: _create(running, {"gate": str(gate)}))
        wait_until(lambda: on_loop(running, lambda: entry.prediction.chunks), what="first chunk")
        view = on_loop(running, lambda: PredictionView(entry, running.server.service))
        opened = view.comm.sent[0]
        assert opened.msg_type == "comm_open"
        assert opened.data["state"]["output_text"] == "before "
        assert opened.data["state"]["logs"] == "first line\n"
        assert opened.data["state"]["status"] == "processing"
        assert opened.data["state"]["done"] is False
        Path(f"{gate}1").write_text("go")
        wait_until(
            lambda: any(
                m.method == "custom" and "middle" in m.content.get("output_text", "")
                for m in updates(view)
            ),
            what="the middle token to be sent",
        )
        Path(f"{gate}2").write_text("go")
        _wait_done(running, view)
    # A browser that never asked for anything (the kernel is busy with the cell) saw it
    # stream: the deltas continue the traits it opened with.
    frontend = Frontend()
    frontend.receive_all(view.comm.sent)
    assert frontend.live
    assert frontend.before_final is not None
    assert frontend.before_final["output_text"] == "before middle "
    assert frontend.before_final["logs"] == "first line\nsecond line\n"
    assert frontend.state["output_text"] == "before middle after"
    assert not [m for m in updates(view) if m.method == "custom" and m.content["kind"] == "full"]


def test_restored_frontend_missing_deltas_waits_for_the_full_state(tmp_path):
    """A reloaded page's model (old traits, a gap in the deltas) waits for the full state."""
    gate = tmp_path / "gate"

    def sent(kind):
        return [m for m in updates(view) if m.method == "custom" and m.content["kind"] == kind]

    def deltas():
        return sent("delta")

    with serve_file(tmp_path, TWO_GATES) as running:
        view = _start_view(running, {"gate": str(gate)})
        wait_until(lambda: deltas(), what="the first delta")
        Path(f"{gate}1").write_text("go")
        wait_until(lambda: len(deltas()) >= 2, what="the second delta")
        restored = Frontend()
        restored.receive_all([view.comm.sent[0]])
        restored.receive_all(deltas()[1:])  # the first one reached the page before the reload
        assert not restored.live
        assert "middle" not in restored.state["output_text"]
        view._handle_custom_msg({"kind": "sync"}, [])  # what the restored page asks
        full = wait_until(lambda: sent("full"), what="the full state")
        restored.receive_all(full)
        assert restored.live
        assert restored.state["output_text"] == "before middle "
        Path(f"{gate}2").write_text("go")
        _wait_done(running, view)
    restored.receive_all([m for m in updates(view) if m.method == "update"])
    assert restored.state["output_text"] == "before middle after"


def test_failed_prediction_shows_error_and_traceback(tmp_path):
    """A failure shows what the predictor raised (not coglet's wrapping), its traceback, output."""
    with serve_file(tmp_path, STREAM) as running:
        view = _start_view(running, {"n": 2, "fail": True})
        _wait_done(running, view)
        state = on_loop(running, view.get_state)
    assert state["status"] == "failed"
    assert state["error"] == "ValueError: boom"
    assert "Traceback (most recent call last)" in state["traceback"]
    assert state["traceback"].rstrip().endswith("ValueError: boom")
    assert state["output_text"] == "t0 t1 "


def test_cancel_button_cancels_the_prediction(tmp_path):
    """The view's Cancel (a frontend message, from another thread) ends the prediction canceled."""
    gate = tmp_path / "never"
    with serve_file(tmp_path, GATED) as running:
        view = _start_view(running, {"gate": str(gate)})
        wait_until(lambda: updates(view), what="the first update")
        threading.Thread(target=view._handle_custom_msg, args=({"kind": "cancel"}, [])).start()
        _wait_done(running, view)
        state = on_loop(running, view.get_state)
    assert state["status"] == "canceled"
    assert state["output_text"] == "before "


def test_lagging_view_says_so_and_reloads(tmp_path):
    """A view that falls behind its queue bound says so and reloads the complete state."""
    with serve_file(tmp_path, MANY) as running:
        view = _start_view(running, {"n": 20_000}, queue_capacity=1)
        _wait_done(running, view)
        state = on_loop(running, view.get_state)
    assert state["status"] == "succeeded"
    assert state["output_text"] == "tok " * 20_000
    assert state["logs"] == "start\nend\n"
    assert state["notices"], "the lag must be shown"
    assert state["notices"][0].startswith("This view fell behind the stream and missed ")


def test_late_view_after_history_eviction_loads_the_prediction(tmp_path):
    """A view opened after the replay history was evicted still shows everything, and says why."""
    gate = tmp_path / "gate"
    with serve_file(tmp_path, GATED, history_capacity=2) as running:
        entry = on_loop(running, lambda: _create(running, {"gate": str(gate)}))
        wait_until(lambda: on_loop(running, lambda: entry.prediction.chunks), what="first chunk")
        view = on_loop(running, lambda: PredictionView(entry, running.server.service))
        gate.write_text("go")
        _wait_done(running, view)
        state = on_loop(running, view.get_state)
    assert state["output_text"] == "before after"
    assert state["logs"] == "first line\nsecond line\n"
    assert state["status"] == "succeeded"
    assert state["notices"][0].startswith("The event history was truncated (")


def test_view_of_a_finished_prediction_is_complete_at_once(tmp_path):
    """A view built from a finished Prediction (service.recent) holds its final state at once."""
    with serve_file(tmp_path, STREAM) as running:
        body = requests.post(running.url + "/predictions", json={"input": {"n": 3}}, timeout=30)
        assert body.json()["status"] == "succeeded"
        service = running.server.service
        view = on_loop(running, lambda: PredictionView(service.recent[0], service))
        state = on_loop(running, view.get_state)
    assert state["done"] is True
    assert state["output_text"] == "t0 t1 t2 "
    assert state["logs"] == "warming up\ndone generating\n"
    assert state["metrics"]["tokens"] == 3


def test_view_does_not_keep_an_sse_prediction_alive(tmp_path):
    """An SSE client hanging up cancels its prediction even while a view follows it (§11.4)."""
    gate = tmp_path / "never"
    with serve_file(tmp_path, GATED) as running:
        service = running.server.service
        views: list[PredictionView] = []

        def follow(kind, entry):
            if kind == "created":
                views.append(PredictionView(entry, service))

        on_loop(running, lambda: service.add_listener(follow))
        with requests.post(
            running.url + "/predictions",
            json={"input": {"gate": str(gate)}},
            headers={"Accept": "text/event-stream"},
            stream=True,
            timeout=30,
        ) as response:
            next(response.iter_lines())  # the stream is live
            wait_until(lambda: views, what="the listener's view")
        view = views[0]
        _wait_done(running, view)
        state = on_loop(running, view.get_state)
    assert state["status"] == "canceled"


def test_file_outputs_are_media_and_download_links(tmp_path):
    """Path outputs become an image (by MIME type) and a download link, with data URLs."""
    with serve_file(tmp_path, MEDIA) as running:
        view = _start_view(running, {})
        _wait_done(running, view)
        state = on_loop(running, view.get_state)
    image, other = state["output_items"]
    assert image["kind"] == "image" and image["mime"] == "image/png"
    assert image["src"].startswith("data:image/png;base64,")
    assert base64.b64decode(image["src"].split(",", 1)[1]).startswith(b"\x89PNG")
    assert other["kind"] == "file" and other["src"].startswith("data:application/octet-stream")
    assert state["output_text"] == ""


def test_object_outputs_are_readable_json(tmp_path):
    """A BaseModel output is shown as indented JSON."""
    with serve_file(tmp_path, JSON_OUT) as running:
        view = _start_view(running, {})
        _wait_done(running, view)
        state = on_loop(running, view.get_state)
    assert state["output_items"] == [
        {"kind": "json", "index": 0, "text": '{\n  "label": "cat",\n  "score": 0.5\n}'}
    ]


def test_copy_as_curl_is_the_equivalent_request(tmp_path):
    """ "Copy as curl" is the SSE request a terminal would send for the same input."""
    with serve_file(tmp_path, STREAM) as running:
        view = _start_view(running, {"n": 2})
        _wait_done(running, view)
        curl = view.curl
        url = running.url
    assert curl == (
        f"curl -sN -X POST {url}/predictions \\\n"
        "  -H 'Content-Type: application/json' \\\n"
        "  -H 'Accept: text/event-stream' \\\n"
        """  -d '{"input":{"n":2}}'"""
    )


def test_saved_notebook_gets_a_static_rendering(tmp_path):
    """The display bundle carries the live view, and text/html and text/plain renderings."""
    with serve_file(tmp_path, STREAM) as running:
        view = _start_view(running, {"n": 3})
        _wait_done(running, view)
        data, _ = on_loop(running, view._repr_mimebundle_)
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == view.model_id
    head, *rest = data["text/plain"].splitlines()  # what a terminal or text export shows
    assert head.startswith(f"prediction {view.prediction_id}: succeeded in ")
    assert rest == ["t0 t1 t2 ", "logs:", "  warming up", "  done generating"]
    html = data["text/html"]
    assert "t0 t1 t2 " in html
    assert ">succeeded</span>" in html
    assert "warming up" in html
    assert "<td>tokens</td><td>3</td><td>increment</td>" in html


def test_widget_sources_import_neither_tornado_nor_ipython():
    """nbcog/widget talks to the service only: no tornado, no IPython, no nbcog.http imports."""
    root = Path(__file__).parents[2] / "nbcog" / "widget"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                assert top not in ("tornado", "IPython"), f"{path.name} imports {name}"
                assert not name.startswith(("nbcog.http", "nbcog.kernel")), f"{path.name}: {name}"
