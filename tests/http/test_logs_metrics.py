"""Prediction logs (spec §12) and metrics (spec §13) as HTTP clients see them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cog
import pytest
import requests
from helpers import wait_until
from lifecycle_helpers import WAIT_FOR, Background, SSEStream, health, source

import nbcog

# -- logs ---------------------------------------------------------------------------------

CHUNKING = """
import logging
import sys
from typing import Iterator
from cog import BaseRunner, streaming

log = logging.getLogger("predictor")
log.handlers[:] = [logging.StreamHandler(sys.stderr)]  # loggers outlive this module
log.propagate = False

class Predictor(BaseRunner):
    def setup(self) -> None:
        print("from setup")

    @streaming
    def run(self) -> Iterator[str]:
        print("a")
        sys.stdout.write("partial ")
        sys.stdout.write("more\\n")
        sys.stdout.write("two\\nlines\\n")
        sys.stderr.write("err line\\n")
        log.warning("from logging")
        sys.stdout.write("progress 50%")
        sys.stdout.flush()
        sys.stdout.write("x\\ny")
        yield "out"
        sys.stdout.write("tail")
"""

EXPECTED_CHUNKS = [
    ("log", {"source": "stdout", "data": "a\n"}),
    ("log", {"source": "stdout", "data": "partial more\n"}),
    ("log", {"source": "stdout", "data": "two\nlines\n"}),
    ("log", {"source": "stderr", "data": "err line\n"}),
    ("log", {"source": "stderr", "data": "from logging\n"}),
    ("log", {"source": "stdout", "data": "progress 50%"}),
    ("log", {"source": "stdout", "data": "x\n"}),
    ("output", {"chunk": "out", "index": 0}),
    ("log", {"source": "stdout", "data": "ytail"}),
]
EXPECTED_LOGS = "a\npartial more\ntwo\nlines\nerr line\nfrom logging\nprogress 50%x\nytail"


def test_log_chunks_over_sse(serve_source):
    """print, stdout/stderr writes and logging become coglet's line chunks; the tail is flushed."""
    with serve_source(CHUNKING) as s:
        stream = SSEStream(s.url, "POST", "/predictions", {"id": "chunks"})
        try:
            events = list(stream.events())
        finally:
            stream.close()
    assert events[0] == ("start", {"id": "chunks", "status": "processing"})
    assert events[1:-1] == EXPECTED_CHUNKS
    name, completed = events[-1]
    assert name == "completed"
    assert completed["logs"] == EXPECTED_LOGS
    assert completed["status"] == "succeeded"


def test_logs_stay_with_their_prediction(serve_source):
    """Setup output stays in setup logs; a trailing partial line never leaks into the next run."""
    with serve_source(CHUNKING) as s:
        bodies = [
            requests.post(s.url + "/predictions", json={}, timeout=10).json() for _ in range(3)
        ]
        setup_logs = health(s.url)["setup"]["logs"]
    assert [body["logs"] for body in bodies] == [EXPECTED_LOGS] * 3
    assert setup_logs == "from setup\n"


def test_logs_of_failed_prediction(serve_source):
    """A failing prediction's sync body carries its real logs (coglet sends ""; spec §21.3)."""
    src = """
import sys
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self) -> str:
        print("working")
        sys.stderr.write("about to fail")
        raise ValueError("boom")
"""
    with serve_source(src) as s:
        body = requests.post(s.url + "/predictions", json={}, timeout=10).json()
    assert body["status"] == "failed"
    assert body["error"] == "Prediction failed: Prediction failed: ValueError: boom"
    assert body["logs"] == "working\nabout to fail"


CONCURRENT_LOGS = """
import asyncio
import sys
from cog import BaseRunner, concurrent

class Predictor(BaseRunner):
    async def setup(self) -> None:
        self.arrived = 0
        self.all_in = asyncio.Event()

    @concurrent(max=3)
    async def run(self, name: str) -> str:
        print(f"{name} first")
        self.arrived += 1
        if self.arrived == 3:
            self.all_in.set()
        await self.all_in.wait()
        print(f"{name} second")
        await asyncio.create_task(self.helper(name))
        await asyncio.to_thread(print, f"{name} from a thread")
        self.record_metric("who", name)
        return name

    async def helper(self, name: str) -> None:
        await asyncio.sleep(0)
        print(f"{name} from a task", file=sys.stderr)
"""


def test_concurrent_async_predictions_keep_their_own_logs(serve_source):
    """Three async predictions in flight at once each get only their own output and metrics."""
    names = ["ann", "bob", "cat"]
    with serve_source(CONCURRENT_LOGS) as s:
        requests_ = [
            Background("POST", s.url + "/predictions", json={"input": {"name": n}}) for n in names
        ]
        bodies = [r.result().json() for r in requests_]
    for name, body in zip(names, bodies, strict=True):
        assert body["status"] == "succeeded"
        assert body["output"] == name
        assert body["logs"] == (
            f"{name} first\n{name} second\n{name} from a task\n{name} from a thread\n"
        )
        assert body["metrics"]["who"] == name


KERNEL_SCRIPT = """
import json
import logging
import os
import sys
import threading
import time

import requests

from nbcog.testing import serve_in_thread


class KernelStream:
    '''Not a file object: a stand-in for ipykernel's OutStream, owned by the "kernel".'''

    encoding = "utf-8"

    def __init__(self):
        self.parts = []

    def write(self, text):
        self.parts.append(text)
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False


real_stdout = sys.stdout
kernel_out, kernel_err = KernelStream(), KernelStream()
sys.stdout, sys.stderr = kernel_out, kernel_err
logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(message)s", force=True)
print("before serving")
with serve_in_thread(sys.argv[1] + ":Predictor") as server:
    print("while serving")
    body = {}
    url = server.url + "/predictions"
    worker = threading.Thread(
        target=lambda: body.update(requests.post(url, json={}, timeout=60).json())
    )
    worker.start()
    deadline = time.monotonic() + 60
    while not os.path.exists(sys.argv[2] + "/running"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    print("cell output during the prediction")
    logging.getLogger("cell").warning("cell logging")
    open(sys.argv[2] + "/release", "w").close()
    worker.join(60)
    setup_logs = requests.get(server.url + "/health-check", timeout=60).json()["setup"]["logs"]
print("after serving")
real_stdout.write(json.dumps({
    "body": body,
    "setup_logs": setup_logs,
    "kernel_stdout": "".join(kernel_out.parts),
    "kernel_stderr": "".join(kernel_err.parts),
}))
"""

KERNEL_PREDICTOR = (
    WAIT_FOR
    + """
import logging
import sys
from cog import BaseRunner

class Predictor(BaseRunner):
    def setup(self) -> None:
        print("in setup")

    def run(self) -> str:
        print("in predict")
        mark("@TMP@/running")
        wait_for("@TMP@/release")
        logging.getLogger("model").warning("model logging")
        sys.stderr.write("predict stderr\\n")
        return "ok"
"""
)


def test_foreign_stdout_like_a_kernel(tmp_path):
    """With sys.stdout replaced by a foreign object (a kernel's), predictions still get their
    output and logging, and output outside predictions still reaches that object."""
    script = tmp_path / "kernel.py"
    script.write_text(KERNEL_SCRIPT)
    predictor = tmp_path / "predict.py"
    predictor.write_text(source(KERNEL_PREDICTOR, tmp_path))
    repo = Path(nbcog.__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [sys.executable, str(script), str(predictor), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["body"]["status"] == "succeeded"
    assert result["body"]["logs"] == "in predict\nmodel logging\npredict stderr\n"
    assert result["setup_logs"] == "in setup\n"
    assert result["kernel_stdout"] == (
        "before serving\nwhile serving\ncell output during the prediction\nafter serving\n"
    )
    assert "cell logging\n" in result["kernel_stderr"]
    assert "model logging" not in result["kernel_stderr"]
    assert "predict stderr" not in result["kernel_stderr"]


# -- metrics --------------------------------------------------------------------------------

METRICS = """
import asyncio
from cog import BaseRunner, current_scope

class Predictor(BaseRunner):
    def run(self, fail: str = "") -> str:
        scope = current_scope()
        scope.record_metric("temperature", 0.7)
        scope.record_metric("tokens", 1, mode="incr")
        scope.record_metric("tokens", 2, mode="increment")
        scope.record_metric("ratio", 0.25, "incr")
        scope.record_metric("ratio", 0.5, "incr")
        scope.metrics.record("logprobs", -1.2, mode="append")
        scope.metrics.record("logprobs", -0.5, mode="append")
        scope.record_metric("scalar", 1)
        scope.record_metric("scalar", 2, mode="append")
        scope.metrics["count"] = 42
        scope.metrics["gone"] = 1
        del scope.metrics["gone"]
        scope.metrics["gone2"] = "x"
        scope.metrics["gone2"] = None
        scope.metrics["gone3"] = 1
        scope.metrics.delete("gone3")
        scope.record_metric("timing.pre", 0.1)
        scope.record_metric("timing.post", 0.2)
        scope.record_metric("a.b.c.d", {"k": [1]})
        self.record_metric("runner_metric", True)
        self.scope.metrics["via_self"] = "s"
        if fail == "name":
            scope.record_metric("_invalid", 1)
        if fail == "mode":
            scope.record_metric("m", 1, mode="bogus")
        if fail == "type":
            scope.record_metric("count", "str")
        if fail == "none":
            scope.record_metric("n", None)
        return repr(scope) + "|" + repr(scope.metrics) + "|" + repr(dict(scope.context))
"""

# coglet 0.23.1's sync body for METRICS (checked live), minus predict_time.
EXPECTED_METRICS = {
    "a": {"b": {"c": {"d": {"k": [1]}}}},
    "count": 42,
    "logprobs": [-1.2, -0.5],
    "ratio": 0.75,
    "runner_metric": True,
    "scalar": [1, 2],
    "temperature": 0.7,
    "timing": {"post": 0.2, "pre": 0.1},
    "tokens": 3,
    "via_self": "s",
}


def _without_predict_time(body: dict) -> dict:
    metrics = dict(body["metrics"])
    predict_time = metrics.pop("predict_time")
    assert isinstance(predict_time, float)
    assert predict_time > 0
    return metrics


def test_metrics_modes_deletes_and_nesting(serve_source):
    """Scope records, deletes, modes and dotted keys aggregate exactly as coglet's body."""
    with serve_source(METRICS) as s:
        body = requests.post(
            s.url + "/predictions", json={"input": {}, "context": {"user": "alice"}}, timeout=10
        ).json()
    assert body["status"] == "succeeded"
    assert (
        body["output"] == "Scope(MetricRecorder(keys=11))|MetricRecorder(keys=11)|{'user': 'alice'}"
    )
    assert _without_predict_time(body) == EXPECTED_METRICS


@pytest.mark.parametrize(
    ("fail", "error"),
    [
        ("name", "ValueError: metric name segment '_invalid' must start with a letter"),
        (
            "mode",
            "TypeError: Invalid metric mode: 'bogus'. Expected 'replace', 'incr', or 'append'.",
        ),
        (
            "type",
            "TypeError: Metric 'count' has type int, cannot set to str without deleting first",
        ),
        (
            "none",
            "TypeError: Unsupported metric value type: NoneType. "
            "Expected bool, int, float, str, list, or dict.",
        ),
    ],
)
def test_metric_error_fails_prediction_keeping_earlier_metrics(serve_source, fail, error):
    """A rejected metric fails the prediction with coglet's message; earlier metrics stay."""
    with serve_source(METRICS) as s:
        body = requests.post(
            s.url + "/predictions", json={"input": {"fail": fail}}, timeout=10
        ).json()
    assert body["status"] == "failed"
    assert body["error"] == "Prediction failed: Prediction failed: " + error
    assert "output" not in body
    assert _without_predict_time(body) == EXPECTED_METRICS


def test_async_metric_error_and_context(serve_source):
    """Async predictors record through the same scope; errors use the async prefix."""
    src = """
from cog import BaseRunner, current_scope

class Predictor(BaseRunner):
    async def run(self, bad: bool = False) -> dict:
        current_scope().metrics["n"] = 1
        if bad:
            current_scope().record_metric("x-y", 1)
        return dict(self.scope.context)
"""
    with serve_source(src) as s:
        good = requests.post(
            s.url + "/predictions", json={"context": {"a": "1", "b": "2"}}, timeout=10
        ).json()
        bad = requests.post(
            s.url + "/predictions", json={"input": {"bad": True}}, timeout=10
        ).json()
    assert good["output"] == {"a": "1", "b": "2"}
    assert _without_predict_time(good) == {"n": 1}
    assert bad["error"] == (
        "Prediction failed: Async prediction failed: "
        "ValueError: metric name segment 'x-y' contains invalid character '-'"
    )
    assert _without_predict_time(bad) == {"n": 1}


def test_scope_context_is_per_request(serve_source):
    """scope.context is the request's context, and {} when the request has none."""
    src = """
from cog import BaseRunner, current_scope

class Predictor(BaseRunner):
    def run(self) -> dict:
        return {"context": dict(current_scope().context)}
"""
    with serve_source(src) as s:
        with_context = requests.post(
            s.url + "/predictions", json={"context": {"tenant": "acme"}}, timeout=10
        ).json()
        without = requests.post(s.url + "/predictions", json={}, timeout=10).json()
    assert with_context["output"] == {"context": {"tenant": "acme"}}
    assert without["output"] == {"context": {}}


def test_metric_events_over_sse(serve_source):
    """Each accepted record or delete is one SSE metric event; incr is sent as increment."""
    src = """
from typing import Iterator
from cog import BaseRunner, current_scope, streaming

class Predictor(BaseRunner):
    @streaming
    def run(self) -> Iterator[str]:
        scope = current_scope()
        scope.record_metric("tokens", 1, mode="incr")
        yield "a"
        scope.metrics.record("steps", "s1", mode="append")
        scope.metrics["tmp"] = 3
        del scope.metrics["tmp"]
"""
    with serve_source(src) as s:
        stream = SSEStream(s.url, "POST", "/predictions", {"id": "m"})
        try:
            events = list(stream.events())
        finally:
            stream.close()
    assert events[1:-1] == [
        ("metric", {"name": "tokens", "value": 1, "mode": "increment"}),
        ("output", {"chunk": "a", "index": 0}),
        ("metric", {"name": "steps", "value": "s1", "mode": "append"}),
        ("metric", {"name": "tmp", "value": 3, "mode": "replace"}),
        ("metric", {"name": "tmp", "value": None, "mode": "replace"}),
    ]
    completed = events[-1][1]
    assert _without_predict_time(completed) == {"tokens": 1, "steps": ["s1"]}


def test_predict_time_in_every_terminal_body(serve_source, tmp_path):
    """Succeeded, failed and canceled sync bodies all carry metrics.predict_time."""
    src = (
        WAIT_FOR
        + """
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self, mode: str) -> str:
        if mode == "fail":
            raise RuntimeError("no")
        if mode == "wait":
            mark("@TMP@/running")
            wait_for("@TMP@/never")
        return "yes"
"""
    )
    with serve_source(source(src, tmp_path)) as s:
        ok = requests.post(
            s.url + "/predictions", json={"input": {"mode": "ok"}}, timeout=10
        ).json()
        failed = requests.post(
            s.url + "/predictions", json={"input": {"mode": "fail"}}, timeout=10
        ).json()
        waiting = Background(
            "POST", s.url + "/predictions", json={"id": "w", "input": {"mode": "wait"}}
        )
        wait_until((tmp_path / "running").exists, "the prediction to start")
        assert requests.post(s.url + "/predictions/w/cancel", timeout=10).status_code == 200
        canceled = waiting.result().json()
    assert [b["status"] for b in (ok, failed, canceled)] == ["succeeded", "failed", "canceled"]
    for body in (ok, failed, canceled):
        assert _without_predict_time(body) == {}


@pytest.fixture
def fresh_emit_metric(monkeypatch):
    """Forget cog's cached ``emit_metric`` so that its first access prints the notice again."""
    monkeypatch.delitem(cog.__dict__, "emit_metric", raising=False)


def test_deprecated_emit_metric(serve_source, fresh_emit_metric):
    """cog.emit_metric still records, and its one-time deprecation notice is a log line."""
    src = """
import cog
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self) -> str:
        cog.emit_metric("legacy", 1.5)
        cog.emit_metric("legacy2", 2)
        return "ok"
"""
    notice = (
        "cog: emit_metric() is deprecated and will be removed in a future release. "
        "Use current_scope().record_metric(name, value) instead.\n"
    )
    with serve_source(src) as s:
        first = requests.post(s.url + "/predictions", json={}, timeout=10).json()
        second = requests.post(s.url + "/predictions", json={}, timeout=10).json()
    assert first["logs"] == notice
    assert second["logs"] == ""
    assert _without_predict_time(first) == {"legacy": 1.5, "legacy2": 2}
    assert _without_predict_time(second) == {"legacy": 1.5, "legacy2": 2}
