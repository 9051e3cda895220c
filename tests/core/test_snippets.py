"""The snippet builder (nbcog/core/snippets.py): every language's snippet, run for real against a
live server (curl and Python as subprocesses, JavaScript with node), gets the same output."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbcog.core.snippets import (
    INLINE_FILE_LIMIT,
    LANGUAGES,
    SECRET_PLACEHOLDER,
    Target,
    all_snippets,
    cog_predict,
    curl,
    javascript,
    python,
    snippet,
)
from nbcog.testing import RunningServer, parse_sse, serve_in_thread

TOKEN = "snip-token-7"
ECHO = """
from cog import BaseRunner, Input

class Predictor(BaseRunner):
    def run(self, text: str, times: int = Input(default=1), note: str = "") -> str:
        return (text * times) + note
"""
STREAM = """
from typing import Iterator
from cog import BaseRunner, streaming

class Predictor(BaseRunner):
    @streaming
    def run(self, text: str, n: int = 3) -> Iterator[str]:
        for i in range(n):
            yield f"{text}-{i}"
"""
INPUTS = {"text": 'it\'s "quoted" $HOME `x`', "times": 2, "note": "ü\nline"}


def serve(tmp_path: Path, source: str, token: str | None) -> Iterator[RunningServer]:
    path = tmp_path / "predict.py"
    path.write_text(source)
    with serve_in_thread(f"{path}:Predictor", token=token) as running:
        yield running


@pytest.fixture(params=[None, TOKEN], ids=["open", "token"])
def echo(request, tmp_path) -> Iterator[tuple[RunningServer, Target]]:
    """A JSON model, served without and with a token, and its snippet target."""
    for running in serve(tmp_path, ECHO, request.param):
        yield running, Target(running.url, token=request.param)


@pytest.fixture(params=[None, TOKEN], ids=["open", "token"])
def stream(request, tmp_path) -> Iterator[tuple[RunningServer, Target]]:
    """A streaming model, served without and with a token, and its snippet target."""
    for running in serve(tmp_path, STREAM, request.param):
        yield running, Target(running.url, token=request.param, streaming=True)


def run(command: list[str], cwd: Path) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout


def run_shell(code: str, cwd: Path) -> str:
    return run(["bash", "-c", code], cwd)


def run_python(code: str, cwd: Path) -> str:
    return run([sys.executable, "-c", code], cwd)


def run_node(code: str, cwd: Path) -> str:
    node = shutil.which("node")
    assert node is not None, "node is needed (Debian's nodejs package)"
    script = cwd / "snippet.mjs"
    script.write_text(code)
    return run([node, str(script)], cwd)


def test_curl_json_gets_the_output(echo, tmp_path):
    """The curl JSON snippet gets the prediction with the output the inputs make."""
    _, target = echo
    body = json.loads(run_shell(curl(target, INPUTS), tmp_path))
    assert body["status"] == "succeeded"
    assert body["output"] == INPUTS["text"] * 2 + INPUTS["note"]


def test_python_json_prints_the_output(echo, tmp_path):
    """The Python ``requests`` snippet prints the same output as curl gets."""
    _, target = echo
    expected = json.loads(run_shell(curl(target, INPUTS), tmp_path))["output"]
    assert run_python(python(target, INPUTS), tmp_path) == expected + "\n"


def test_javascript_json_logs_the_output(echo, tmp_path):
    """The JavaScript ``fetch`` snippet (node) logs the same output as curl gets."""
    _, target = echo
    expected = json.loads(run_shell(curl(target, INPUTS), tmp_path))["output"]
    assert run_node(javascript(target, INPUTS), tmp_path) == expected + "\n"


def test_sse_snippets_stream_the_same_chunks(stream, tmp_path):
    """curl ``-sN``, the Python SSE loop and node's fetch reader see the same chunks, in order."""
    _, target = stream
    inputs = {"text": "a b", "n": 4}
    chunks = [f"a b-{i}" for i in range(4)]
    events = parse_sse(run_shell(curl(target, inputs, sse=True), tmp_path).encode())
    assert [data["chunk"] for name, data in events if name == "output"] == chunks
    assert events[-1][0] == "completed"
    assert run_python(python(target, inputs, sse=True), tmp_path).splitlines() == chunks
    assert run_node(javascript(target, inputs, sse=True), tmp_path).splitlines() == chunks


def test_combined_snippets_run_whole(stream, tmp_path):
    """The texts shown to users (JSON then SSE) run as they are: both variants, same output."""
    _, target = stream
    inputs = {"text": "z", "n": 2}
    shown = all_snippets(target, inputs)
    out = run_shell(shown["curl"], tmp_path)
    assert '"output":["z-0","z-1"]' in out
    assert 'event: output\ndata: {"chunk":"z-1","index":1}' in out
    assert run_python(shown["python"], tmp_path).splitlines() == ["['z-0', 'z-1']", "z-0", "z-1"]
    assert run_node(shown["js"], tmp_path).splitlines() == ["z-0", "z-1"]


def test_snippets_without_the_token_are_refused(tmp_path):
    """Against a token server, a snippet built without the token fails (401): the token matters."""
    for running in serve(tmp_path, ECHO, TOKEN):
        body = json.loads(run_shell(curl(Target(running.url), INPUTS), tmp_path))
        assert "Authorization: Bearer" in body["detail"]


def test_cog_predict_line():
    """``cog predict`` gets one ``-i`` per input (per list item), shell-quoted."""
    line = cog_predict(Target("http://x"), {"text": "two words", "n": 3, "tags": ["a", "b"]})
    assert line == "cog predict -i 'text=two words' -i n=3 -i tags=a -i tags=b"
    assert cog_predict(Target("http://x", training=True), {"steps": 1}) == "cog train -i steps=1"


def test_secrets_never_in_a_snippet():
    """A Secret input's value (even masked) is replaced by a placeholder in every language."""
    target = Target("http://x", token="t", streaming=True, secrets=("key",))
    for language, text in all_snippets(target, {"key": "**********", "text": "hi"}).items():
        assert "**********" not in text, language
        assert SECRET_PLACEHOLDER in text, language


def test_unknown_language():
    """An unknown language is a ValueError naming the choices."""
    with pytest.raises(ValueError, match="curl, python, js, cog"):
        snippet("ruby", Target("http://x"), {})
    assert LANGUAGES == ("curl", "python", "js", "cog")


def test_large_data_urls_become_a_placeholder():
    """A data: URL input over the limit is a placeholder in snippets; small ones stay as is."""
    small = "data:text/plain;base64,aGk="
    large = "data:image/png;base64," + "A" * INLINE_FILE_LIMIT
    text = python(Target("http://x"), {"a": small, "b": large, "c": [large]})
    assert small in text
    assert large not in text
    assert text.count("<image/png, 64 KiB as a data: URL: give a data: or https: URL>") == 2
