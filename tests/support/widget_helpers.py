"""Shared pieces of the widget tests: a recording comm, waiting on the loop, a fake frontend.

Widgets are built without a kernel (anywidget's and ipywidgets' own tests do the same):
``comm.create_comm`` then gives a ``DummyComm``. ``RecordingComm`` is that comm plus a record
of every message the widget sent: its type, JSON size as the kernel would pack it, and the
thread that sent it.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import comm
import pytest
from comm.base_comm import BuffersType, MaybeDict

from nbcog.testing import RunningServer, serve_in_thread

WAIT = 60.0
FULL_KEYS = ("status", "output_text", "output_items", "logs", "metrics", "metric_modes", "notices")


@dataclass
class Sent:
    """One message a widget sent to the frontend."""

    msg_type: str
    data: dict[str, Any]
    size: int
    thread: str
    at: float

    @property
    def method(self) -> str:
        """``update`` (trait state), ``custom`` (our deltas) or ``""`` for comm open/close."""
        return self.data.get("method", "") if isinstance(self.data, dict) else ""

    @property
    def content(self) -> dict[str, Any]:
        """The custom message's content."""
        return self.data.get("content", {})


class RecordingComm(comm.DummyComm):
    """A kernel-less comm that keeps what was sent (sizes as jupyter_client packs JSON)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sent: list[Sent] = []
        super().__init__(*args, **kwargs)

    def publish_msg(
        self,
        msg_type: str,
        data: MaybeDict = None,
        metadata: MaybeDict = None,
        buffers: BuffersType = None,
        **keys: Any,
    ) -> None:
        """Record instead of sending."""
        size = len(json.dumps(data, ensure_ascii=False).encode())
        size += sum(len(bytes(b)) for b in buffers or [])
        name = threading.current_thread().name
        self.sent.append(Sent(msg_type, data or {}, size, name, time.monotonic()))


@pytest.fixture
def recording_comms(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every widget made in the test gets a ``RecordingComm``."""
    monkeypatch.setattr(comm, "create_comm", RecordingComm)


def updates(widget: Any) -> list[Sent]:
    """The messages a widget sent after it opened (``comm_msg``: updates and custom)."""
    return [m for m in widget.comm.sent if m.msg_type == "comm_msg"]


def on_loop(running: RunningServer, fn: Callable[[], Any]) -> Any:
    """Run ``fn()`` on the server's loop thread (where the widgets live)."""
    return running.call(fn)


@contextmanager
def serve_file(tmp_path: Path, source: str, **options: Any) -> Iterator[RunningServer]:
    """Write ``predict.py`` and serve ``predict.py:Predictor``."""
    path = tmp_path / f"predict_{time.monotonic_ns()}.py"
    path.write_text(source)
    with serve_in_thread(f"{path}:Predictor", **options) as running:
        yield running


class Frontend:
    """The view's JS protocol in Python, as view.js's per-model store folds it.

    The model opens with the traits (the state so far, labelled ``seq``); deltas numbered
    ``seq + 1``, ``seq + 2``, ... are applied in order; after a gap nothing is applied until a
    ``full`` state arrives; the final traits (``done``) replace everything.
    """

    def __init__(self) -> None:
        self.state: dict[str, Any] | None = None
        self.seq = 0
        self.live = True
        self.traits: dict[str, Any] = {}
        self.before_final: dict[str, Any] | None = None

    def receive_all(self, sent: list[Sent]) -> None:
        """Fold messages a view's comm carried, in order (trait updates and custom ones)."""
        for message in sent:
            if message.msg_type == "comm_open" or message.method == "update":
                self.traits.update(message.data["state"])
                if message.msg_type == "comm_open":
                    self.state = {key: copy.deepcopy(self.traits[key]) for key in FULL_KEYS}
                    self.seq = self.traits["seq"]
                if message.data["state"].get("done"):
                    # The prediction ended: the browser redraws from the final traits.
                    self.before_final = self.state
                    self.state = {key: self.traits[key] for key in FULL_KEYS}
            elif message.method == "custom":
                self.receive(message.content)

    def receive(self, content: dict[str, Any]) -> None:
        """Fold one custom message as the browser does."""
        if self.traits.get("done"):
            return
        if content["kind"] == "full":
            self.state = json.loads(json.dumps(content["state"]))
            self.seq = content["state"]["seq"]
            self.live = True
        elif content["kind"] == "delta" and self.state is not None and content["seq"] > self.seq:
            if not self.live or content["seq"] != self.seq + 1:
                self.live = False
                return
            self.seq = content["seq"]
            state = self.state
            state["output_text"] += content.get("output_text", "")
            state["logs"] += content.get("logs", "")
            state["output_items"] += content.get("output_items", [])
            state["metrics"].update(content.get("metrics", {}))
            for key in content.get("metrics_deleted", []):
                state["metrics"].pop(key, None)
            state["metric_modes"].update(content.get("metric_modes", {}))
            state["notices"] += content.get("notices", [])
            if "status" in content:
                state["status"] = content["status"]
