"""Outputs over HTTP (spec §9, §10): values, chunks, generators, models, files and uploads.

Every test talks to a real nbcog server; uploads and webhooks go to a real local HTTP peer.
The sync bodies asserted here match what coglet 0.23.1 answered for the same predictors
(checked live), apart from the generated id and ``predict_time``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from http_peer import Peer, serve_peer

from nbcog.testing import parse_sse

# One predictor for every returned value; files are written next to the predictor source.
RETURNS = """
import datetime, enum, io, os
from typing import Any
import pydantic
from cog import BaseModel, BaseRunner, Path

HERE = os.path.dirname(os.path.abspath(__file__))

class Result(BaseModel):
    name: str
    score: float
    tags: list[str]

class Record(pydantic.BaseModel):
    b: int
    a: str = "x"

class Color(enum.Enum):
    RED = "red"

def write(name, data):
    path = os.path.join(HERE, name)
    with open(path, "wb") as fh:
        fh.write(data)
    return Path(path)

class Predictor(BaseRunner):
    def run(self, kind: str) -> Any:
        print(f"returning {kind}")
        return {
            "str": lambda: "hi",
            "unicode": lambda: "héllo ☃",
            "int": lambda: 7,
            "float": lambda: 2.5,
            "bool": lambda: True,
            "none": lambda: None,
            "list": lambda: ["a", 1, None],
            "tuple": lambda: ("a", "b"),
            "empty": lambda: [],
            "dict": lambda: {"b": 1, "a": {"z": [1, 2], "y": None}},
            "basemodel": lambda: Result(name="n", score=0.5, tags=["t"]),
            "pydantic": lambda: Record(b=2),
            "enum": lambda: Color.RED,
            "datetime": lambda: datetime.datetime(2024, 1, 2, 3, 4, 5),
            "png": lambda: write("out.png", b"\\x89PNG"),
            "txt": lambda: write("plain.txt", b"hello"),
            "noext": lambda: write("blob", b"raw"),
            "bytesio": lambda: io.BytesIO(b"bytes!"),
            "nested": lambda: {"file": write("n.json", b"{}"), "list": [write("x.txt", b"x")]},
            "paths": lambda: [write("one.txt", b"1"), write("two.png", b"2")],
            "fail": lambda: write("fail.txt", b"x"),
            "object": lambda: object(),
            "nested_object": lambda: {"a": object()},
            "nan": lambda: float("nan"),
            "minus_inf": lambda: float("-inf"),
            "nested_nan": lambda: {"b": 1, "a": [1, 2, float("nan")]},
            "nan_text": lambda: {"NaN": "Infinity"},
        }[kind]()
"""

TYPED_LIST = """
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self, empty: bool) -> list[str]:
        return None if empty else ["only"]
"""

SYNC_GENERATOR = """
from typing import Iterator
from cog import BaseRunner, streaming

class Predictor(BaseRunner):
    @streaming
    def run(self) -> Iterator[str]:
        for word in ("a", "b", "c"):
            print(f"yield {word}")
            yield word
"""

# Yields one chunk, then waits for the test to see it before yielding the next one.
ASYNC_GENERATOR = """
import asyncio, os, time
from typing import AsyncIterator
from cog import BaseRunner, streaming

class Predictor(BaseRunner):
    @streaming
    async def run(self, gate: str) -> AsyncIterator[str]:
        yield "first"
        deadline = time.monotonic() + 30
        while not os.path.exists(gate):
            if time.monotonic() > deadline:
                raise TimeoutError("the first chunk was not streamed before the end")
            await asyncio.sleep(0.005)
        yield "second"
"""

ITERATOR_TYPED = """
from typing import Iterator
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self, as_list: bool) -> Iterator[int]:
        if as_list:
            return [1, 2]
        return (n * n for n in range(1, 4))
"""

CONCATENATE = """
from cog import BaseRunner, ConcatenateIterator, streaming

class Predictor(BaseRunner):
    @streaming
    def run(self) -> ConcatenateIterator[str]:
        for token in ("Hello", ",", " world"):
            yield token
"""

SSE = {"Accept": "text/event-stream"}


@pytest.fixture
def peer() -> Iterator[Peer]:
    """A local HTTP host receiving uploads (PUT) and webhooks (POST)."""
    with serve_peer() as running:
        yield running


def predict(url: str, inputs: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A sync prediction's body (always HTTP 200)."""
    response = requests.post(
        url + "/predictions", json={"input": inputs or {}, **extra}, timeout=60
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    return response.json()


def output(url: str, inputs: dict[str, Any] | None = None) -> Any:
    """The output of a sync prediction that must succeed."""
    body = predict(url, inputs)
    assert body["status"] == "succeeded", body
    assert set(body) == {"id", "status", "output", "logs", "metrics"}
    return body["output"]


def data_url(mime: str, data: bytes) -> str:
    """The data URL nbcog (and coglet) make of a file output."""
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


class EventReader:
    """Reads an SSE response incrementally, so a test can act between events."""

    def __init__(self, response: requests.Response) -> None:
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == "text/event-stream"
        self._chunks = response.iter_content(chunk_size=None)
        self._pending = b""
        self.events: list[tuple[str, Any]] = []

    def until(self, done: Callable[[list[tuple[str, Any]]], bool]) -> list[tuple[str, Any]]:
        """Read until ``done(events)``; fail if the stream ends first."""
        while not done(self.events):
            chunk = next(self._chunks, None)
            if chunk is None:
                raise AssertionError(f"stream ended first; got {self.events}")
            complete, _, self._pending = (self._pending + chunk).rpartition(b"\n\n")
            if complete:
                self.events += parse_sse(complete + b"\n\n")
        return self.events


def stream(url: str, inputs: dict[str, Any] | None = None) -> list[tuple[str, Any]]:
    """Every event of an SSE prediction, keep-alive comments left out."""
    with requests.post(
        url + "/predictions", json={"input": inputs or {}}, headers=SSE, stream=True, timeout=60
    ) as response:
        reader = EventReader(response)
        events = reader.until(lambda events: bool(events) and events[-1][0] == "completed")
    return [(name, data) for name, data in events if name != ":"]


# --- returned values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("str", "hi"),
        ("unicode", "héllo ☃"),
        ("int", 7),
        ("float", 2.5),
        ("bool", True),
        ("none", None),
        ("dict", {"a": {"y": None, "z": [1, 2]}, "b": 1}),
        ("basemodel", {"name": "n", "score": 0.5, "tags": ["t"]}),
        ("pydantic", {"a": "x", "b": 2}),
        ("enum", "red"),
        ("datetime", "2024-01-02T03:04:05"),
    ],
)
def test_returned_value_is_the_output(serve_source, kind, expected):
    """A returned value is the output as JSON; None is null; models become objects."""
    with serve_source(RETURNS) as s:
        body = predict(s.url, {"kind": kind})
    assert body["status"] == "succeeded"
    assert body["output"] == expected
    assert type(body["output"]) is type(expected)
    assert body["logs"] == f"returning {kind}\n"


def test_output_objects_have_sorted_keys_at_every_level(serve_source):
    """Output dicts are written with sorted keys and no spaces, as coglet writes them."""
    with serve_source(RETURNS) as s:
        response = requests.post(
            s.url + "/predictions", json={"id": "k", "input": {"kind": "dict"}}, timeout=60
        )
    assert response.content.startswith(
        b'{"id":"k","logs":"returning dict\\n","metrics":{"predict_time":'
    )
    assert response.content.endswith(
        b'},"output":{"a":{"y":null,"z":[1,2]},"b":1},"status":"succeeded"}'
    )


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("list", ["a", 1, None]), ("tuple", ["a", "b"]), ("empty", [])],
)
def test_returned_list_or_tuple_is_an_array(serve_source, kind, expected):
    """A returned list or tuple is the array of its elements, even under '-> Any'."""
    with serve_source(RETURNS) as s:
        assert output(s.url, {"kind": kind}) == expected


def test_returned_list_is_one_chunk_per_element(serve_source, peer):
    """Each element of a returned list is its own chunk: one output webhook per element."""
    peer.route("/hook", 200)
    with serve_source(RETURNS) as s:
        body = predict(
            s.url,
            {"kind": "list"},
            webhook=peer.url + "/hook",
            webhook_events_filter=["output", "completed"],
        )
        hooks = [json.loads(r.body) for r in peer.wait_for("POST", 4)]
    assert body["output"] == ["a", 1, None]
    by_status: dict[str, list[Any]] = {}
    for hook in hooks:
        by_status.setdefault(hook["status"], []).append(hook["output"])
    # Non-terminal webhooks may arrive out of order; their outputs grow one chunk at a time.
    assert sorted(by_status["processing"], key=len) == [["a"], ["a", 1], ["a", 1, None]]
    assert by_status["succeeded"] == [["a", 1, None]]


def test_list_typed_output_is_an_array_even_for_none(serve_source):
    """'-> list[str]' returning None is [], and one element is still a one-element array."""
    with serve_source(TYPED_LIST) as s:
        assert output(s.url, {"empty": True}) == []
        assert output(s.url, {"empty": False}) == ["only"]


# --- generators -------------------------------------------------------------------------------


def test_sync_generator_streams_each_chunk_then_the_array(serve_source):
    """A sync generator's yields are output events in order; the final output is the array."""
    with serve_source(SYNC_GENERATOR) as s:
        events = stream(s.url)
        sync = output(s.url)
    assert [name for name, _ in events] == [
        "start",
        "log",
        "output",
        "log",
        "output",
        "log",
        "output",
        "completed",
    ]
    chunks = [data for name, data in events if name == "output"]
    assert chunks == [
        {"chunk": "a", "index": 0},
        {"chunk": "b", "index": 1},
        {"chunk": "c", "index": 2},
    ]
    completed = events[-1][1]
    assert completed["output"] == ["a", "b", "c"]
    assert completed["logs"] == "yield a\nyield b\nyield c\n"
    assert sync == ["a", "b", "c"]


def test_async_generator_chunks_are_streamed_live(serve_source, tmp_path):
    """An async generator's first chunk reaches the SSE client while the generator still runs."""
    gate = tmp_path / "gate"
    with (
        serve_source(ASYNC_GENERATOR) as s,
        requests.post(
            s.url + "/predictions",
            json={"input": {"gate": str(gate)}},
            headers=SSE,
            stream=True,
            timeout=60,
        ) as response,
    ):
        reader = EventReader(response)
        seen = reader.until(lambda events: any(name == "output" for name, _ in events))
        assert "completed" not in [name for name, _ in seen], seen
        gate.touch()
        events = reader.until(lambda events: events[-1][0] == "completed")
    chunks = [data for name, data in events if name == "output"]
    assert chunks == [{"chunk": "first", "index": 0}, {"chunk": "second", "index": 1}]
    assert events[-1][1]["status"] == "succeeded"
    assert events[-1][1]["output"] == ["first", "second"]


def test_iterator_typed_output_is_an_array(serve_source):
    """'-> Iterator[int]' gives an array, whether predict() returns a generator or a list."""
    with serve_source(ITERATOR_TYPED) as s:
        assert output(s.url, {"as_list": False}) == [1, 4, 9]
        assert output(s.url, {"as_list": True}) == [1, 2]


def test_concatenate_iterator_output_is_the_array_of_tokens(serve_source):
    """ConcatenateIterator tokens stream one chunk each; the output is the token array."""
    with serve_source(CONCATENATE) as s:
        events = stream(s.url)
        sync = output(s.url)
    tokens = [data["chunk"] for name, data in events if name == "output"]
    assert tokens == ["Hello", ",", " world"]
    assert events[-1][1]["output"] == ["Hello", ",", " world"]
    assert sync == ["Hello", ",", " world"]


# --- files ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("png", data_url("image/png", b"\x89PNG")),
        ("txt", data_url("text/plain", b"hello")),
        ("noext", data_url("application/octet-stream", b"raw")),
        ("bytesio", data_url("application/octet-stream", b"bytes!")),
        ("paths", [data_url("text/plain", b"1"), data_url("image/png", b"2")]),
        (
            "nested",
            {"file": data_url("application/json", b"{}"), "list": [data_url("text/plain", b"x")]},
        ),
    ],
)
def test_file_outputs_are_data_urls(serve_source, kind, expected):
    """Path and io.BytesIO outputs, top-level or nested, are data URLs typed by extension."""
    with serve_source(RETURNS) as s:
        assert output(s.url, {"kind": kind}) == expected


LARGE_FILES = """
import os
from typing import Iterator
from cog import BaseRunner, Path, streaming

HERE = os.path.dirname(os.path.abspath(__file__))

class Predictor(BaseRunner):
    @streaming
    def run(self, sizes: list[int]) -> Iterator[Path]:
        for n, size in enumerate(sizes):
            path = os.path.join(HERE, f"large{n}.png" if n else f"large{n}.bin")
            with open(path, "wb") as fh:
                fh.write(bytes(range(256)) * (size // 256))
            yield Path(path)
"""


def canonical(value: Any) -> bytes:
    """coglet's JSON for ``value``: compact, sorted keys, UTF-8."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def test_large_file_outputs_are_exact_json_in_every_response(serve_source, peer):
    """Large data URLs are copied into responses, not escaped: the bytes must still be exact.

    Sizes cross the lazy-encoding threshold (64 KiB) and the separate-body write (1 MiB); the
    sync body, every SSE event and the completed webhook are checked byte for byte.
    """
    sizes = [2 * 1024 * 1024, 100 * 1024]
    expected = [
        data_url("application/octet-stream", bytes(range(256)) * (sizes[0] // 256)),
        data_url("image/png", bytes(range(256)) * (sizes[1] // 256)),
    ]
    peer.route("/hook", 200)
    with serve_source(LARGE_FILES) as s:
        sync = requests.post(s.url + "/predictions", json={"input": {"sizes": sizes}}, timeout=60)
        with requests.post(
            s.url + "/predictions",
            json={
                "input": {"sizes": sizes},
                "webhook": peer.url + "/hook",
                "webhook_events_filter": ["completed"],
            },
            headers=SSE,
            timeout=60,
        ) as response:
            wire = response.content
        [hook] = peer.wait_for("POST", 1)
    assert sync.headers["Content-Length"] == str(len(sync.content))
    assert sync.content == canonical(sync.json())
    assert sync.json()["output"] == expected
    events = parse_sse(wire)
    assert [name for name, _ in events] == ["start", "output", "output", "completed"]
    frames = wire.split(b"\n\n")[:-1]
    for frame, (name, data) in zip(frames, events, strict=True):
        assert frame == b"event: " + name.encode() + b"\ndata: " + canonical(data)
    assert [data["chunk"] for name, data in events if name == "output"] == expected
    assert events[-1][1]["output"] == expected
    assert hook.body == canonical(json.loads(hook.body))
    assert json.loads(hook.body)["status"] == "succeeded"
    assert json.loads(hook.body)["output"] == expected


def test_upload_url_puts_files_and_returns_their_location(serve_source, peer):
    """With upload_url each file is PUT under its basename; the output is Location sans query."""
    peer.route("/up/out.png", 201, Location="http://cdn.example/stored/out.png?sig=1")
    peer.route("/up/plain.txt", 200)
    peer.route("/up/0.bin", 200)
    with serve_source(RETURNS, upload_url=peer.url + "/up") as s:
        located = output(s.url, {"kind": "png"})
        plain = output(s.url, {"kind": "txt"})
        stream_file = output(s.url, {"kind": "bytesio"})
    assert located == "http://cdn.example/stored/out.png"
    assert plain == peer.url + "/up/plain.txt"
    assert stream_file == peer.url + "/up/0.bin"
    puts = [(r.path, r.headers["Content-Type"], r.body) for r in peer.received("PUT")]
    assert puts == [
        ("/up/out.png", "image/png", b"\x89PNG"),
        ("/up/plain.txt", "text/plain", b"hello"),
        ("/up/0.bin", "application/octet-stream", b"bytes!"),
    ]


def test_nested_files_are_inlined_even_with_an_upload_url(serve_source, peer):
    """A Path inside a dict is still a data URL when upload_url is set; nothing is uploaded."""
    with serve_source(RETURNS, upload_url=peer.url + "/up/") as s:
        nested = output(s.url, {"kind": "nested"})
    assert nested == {
        "file": data_url("application/json", b"{}"),
        "list": [data_url("text/plain", b"x")],
    }
    assert peer.received() == []


def test_failed_upload_fails_the_prediction(serve_source, peer):
    """An upload answered 500 fails the prediction with coglet's exact error; the server goes on."""
    peer.route("/up/fail.txt", 500)
    peer.route("/up/plain.txt", 200)
    with serve_source(RETURNS, upload_url=peer.url + "/up/") as s:
        body = predict(s.url, {"kind": "fail"})
        assert output(s.url, {"kind": "txt"}) == peer.url + "/up/plain.txt"
    assert body["status"] == "failed"
    assert (
        body["error"] == "Failed to upload output: upload returned status 500 Internal Server Error"
    )
    assert "output" not in body


@pytest.mark.parametrize("kind", ["object", "nested_object"])
def test_unserialisable_output_fails_with_the_exact_error(serve_source, kind):
    """An output json cannot encode fails the prediction with coglet's serialisation message."""
    with serve_source(RETURNS) as s:
        body = predict(s.url, {"kind": kind})
    assert body["status"] == "failed"
    assert body["error"] == (
        "Prediction failed: Failed to serialize output: "
        "TypeError: Object of type object is not JSON serializable"
    )
    assert set(body) == {"id", "status", "error", "logs", "metrics"}


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("nan", "expected value at line 1 column 1"),
        ("minus_inf", "invalid number at line 1 column 2"),
        ("nested_nan", "expected value at line 1 column 22"),
    ],
)
def test_non_finite_numbers_fail_instead_of_writing_invalid_json(serve_source, kind, problem):
    """NaN and ±Infinity outputs fail with coglet's JSON parse error; the body stays valid JSON."""
    with serve_source(RETURNS) as s:
        body = predict(s.url, {"kind": kind})
        assert output(s.url, {"kind": "nan_text"}) == {"NaN": "Infinity"}
    assert body["status"] == "failed"
    assert body["error"] == f"Prediction failed: Failed to parse output JSON: {problem}"
