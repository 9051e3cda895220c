"""The %cog magics and nbcog.serve in a real ipykernel: predict, files, schema, status, errors.

Each test drives a kernel started with jupyter_client; what a user sees is read from the
kernel's messages (stream text, display data, errors) and checked exactly where it matters.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib

import pytest
import requests
from kernelkit import ECHO, gate_source, kernel, open_gate, refused, serve, wait_ready

from nbcog.kernel.magics import HELP

pytestmark = pytest.mark.slow
__all__ = ["kernel"]  # the fixture, imported for pytest

FILES = """
import tempfile
from cog import BaseRunner, Input, Path

class Predictor(BaseRunner):
    def run(
        self,
        image: Path = Input(description="a picture"),
        note: str = "",
        flags: list[int] = [],
    ) -> Path:
        print(f"got {image.suffix} {image.stat().st_size} bytes, note={note!r}, flags={flags}")
        if note:
            out = Path(tempfile.mkdtemp()) / "note.txt"
            out.write_text(note)
            return out
        return image
"""


def png_bytes() -> bytes:
    """A real 2x1 RGB PNG, built by hand (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 2, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00\x00\x00\xff")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def test_python_api_serves_predicts_and_stops(kernel, tmp_path):
    """nbcog.serve returns a handle: url, predict(), await apredict(), stop() frees the port."""
    kernel.ok(ECHO)
    kernel.ok("import nbcog\nhandle = nbcog.serve(Predictor, port=0)")
    url = kernel.value("handle.url")
    assert (
        kernel.value("repr(handle)") == f"<nbcog server Predictor at {url} (kernel loop, running)>"
    )
    cell = kernel.ok(
        "result = handle.predict(text='ab', times=2)\nprint(result.output, result.status)"
    )
    assert cell.stdout == "echoing ab\nabab succeeded\n"
    assert kernel.value("'nest_asyncio2' in __import__('sys').modules") is True
    cell = kernel.ok("result = await handle.apredict(text='cd')\nprint(result.output)")
    assert cell.stdout == "echoing cd\ncd\n"
    assert (
        requests.post(url + "/predictions", json={"input": {"text": "x"}}, timeout=30).json()[
            "output"
        ]
        == "x"
    )
    cell = kernel.run("handle.predict(times=2)")
    assert cell.error == {
        "ename": "CannotPredict",
        "evalue": "invalid input: text: Field required",
    }
    kernel.ok("handle.stop()\nhandle.stop()")
    assert kernel.value("handle.running") is False
    assert refused(url)
    kernel.ok("threaded = nbcog.serve(Predictor, port=0, thread=True, name='threaded')")
    cell = kernel.ok("result = await threaded.apredict(text='ef')\nprint(result.output)")
    assert cell.stdout == "echoing ef\nef\n"
    assert kernel.value("repr(threaded)").endswith("(thread, running)>")


def test_failed_prediction_is_one_line_error(kernel, tmp_path):
    """A failing prediction fails the cell with PredictionFailed, logs shown before."""
    kernel.ok(
        """
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self, text: str) -> str:
        print("about to fail")
        raise ValueError("boom " + text)
"""
    )
    serve(kernel)
    cell = kernel.run("%cog predict --plain -i text=now")
    assert cell.stdout == "about to fail\n"
    assert cell.error == {"ename": "PredictionFailed", "evalue": "ValueError: boom now"}


def test_predict_sends_local_files_and_shows_images(kernel, tmp_path):
    """-i image=@file.png (or a plain path) arrives as a Path; an image output shows as PNG."""
    picture = png_bytes()
    (tmp_path / "pic.png").write_bytes(picture)
    kernel.ok(FILES)
    serve(kernel)
    cell = kernel.ok("%cog predict --plain -i image=@pic.png -i flags=1 -i flags=2")
    assert cell.stdout == f"got .png {len(picture)} bytes, note='', flags=[1, 2]\n"
    shown = cell.displays[-1]
    assert base64.b64decode(shown["image/png"]) == picture
    assert shown["text/plain"] == f"file: output.png (image/png, {len(picture)} B)"
    cell = kernel.ok(f"%cog predict --plain -i image={tmp_path / 'pic.png'} -i 'note=hello there'")
    assert cell.stdout == f"got .png {len(picture)} bytes, note='hello there', flags=[]\n"
    shown = cell.displays[-1]
    assert shown["text/plain"] == "file: output.txt (text/plain, 11 B)"
    assert shown["text/html"] == (
        '<a download="output.txt" href="data:text/plain;base64,aGVsbG8gdGhlcmU=">'
        "output.txt (text/plain, 11 B)</a>"
    )


def test_predict_waits_for_setup_then_runs(kernel, tmp_path):
    """%cog predict right after %cog serve waits (loop turning) for setup, then predicts."""
    kernel.ok(
        gate_source(tmp_path)
        + """
from cog import BaseRunner

class Predictor(BaseRunner):
    def setup(self) -> None:
        wait_for("setup")

    def run(self, n: int) -> int:
        return n * 2
"""
    )
    url = serve(kernel)
    cell = kernel.submit("%cog predict --plain -i n=21")
    assert requests.get(url + "/health-check", timeout=10).json()["status"] == "STARTING"
    open_gate(tmp_path, "setup")
    assert kernel.finish(cell).check().displays[-1] == {"text/plain": "42"}


def test_setup_progress_is_shown_in_the_serving_cell(kernel, tmp_path):
    """The serve cell's display turns into 'setup succeeded' with curl lines, or 'failed'."""
    kernel.ok(
        """
from cog import BaseRunner, ConcatenateIterator, streaming

class Predictor(BaseRunner):
    def setup(self) -> None:
        print("weights loaded")

    @streaming
    def run(self, prompt: str, steps: int = 3) -> ConcatenateIterator[str]:
        yield prompt

class Broken(BaseRunner):
    def setup(self) -> None:
        raise RuntimeError("no weights")

    def run(self) -> str:
        return ""
"""
    )
    url = serve(kernel)
    text = kernel.wait_for_update("succeeded")
    lines = text.splitlines()
    assert lines[0].startswith("setup of Predictor succeeded in ")
    assert lines[0].endswith(f" s: ready at {url}")
    assert lines[1:] == [
        f"  curl -s -X POST {url}/predictions \\",
        "    -H 'Content-Type: application/json' \\",
        """    -d '{"input":{"prompt":"..."}}'""",
        f"  curl -sN -X POST {url}/predictions \\",
        "    -H 'Content-Type: application/json' \\",
        "    -H 'Accept: text/event-stream' \\",
        """    -d '{"input":{"prompt":"..."}}'""",
        "  | weights loaded",
    ]
    serve(kernel, "Broken --port 0")
    text = kernel.wait_for_update("failed")
    assert text.startswith("setup of Broken failed after ")
    assert text.splitlines()[-1] == "  | RuntimeError: no weights"
    cell = kernel.run(
        "%cog predict --port "
        + str(kernel.value("__import__('nbcog').kernel.serving.servers()[-1].port"))
    )
    assert cell.usage_error == "setup of Broken failed; `%cog status` shows its logs"


def test_usage_errors_are_one_line(kernel, tmp_path):
    """Bad commands, names and inputs are UsageErrors that say what is wrong."""
    kernel.ok(ECHO)
    assert (
        kernel.run("%cog predict").usage_error
        == "no server is running; start one with %cog serve NAME"
    )
    assert kernel.run("%cog bogus").usage_error == (
        "unknown command 'bogus'; the commands are: "
        "serve, stop, status, predict, schema, watch, export, history, snippet"
    )
    assert kernel.run("%cog serve").usage_error == "the following arguments are required: name"
    assert kernel.run("%cog serve Nope").usage_error == (
        "'Nope' is not defined in this notebook: run the cell that defines it, or give file.py:Name"
    )
    serve(kernel)
    assert kernel.run("%cog predict -i text=a -i times=abc").usage_error == (
        "input 'times' takes an integer, not 'abc'"
    )
    assert kernel.run("%cog predict -i text").usage_error == "expected key=value, got 'text'"
    assert kernel.run("%cog predict -i size=3").usage_error == (
        "unknown input 'size'; the inputs are: text, times"
    )
    assert (
        kernel.run("%cog predict -i text=@missing.txt").usage_error == "no such file: missing.txt"
    )
    assert (
        kernel.run("%cog predict -i times=2").usage_error == "invalid input: text: Field required"
    )
    assert (
        kernel.run("%cog stop --port 1").usage_error == "no server of this kernel listens on port 1"
    )


def test_help_lists_the_commands(kernel, tmp_path):
    """%cog --help prints the command list; %cog serve --help that command's options."""
    assert kernel.ok("%cog --help").stdout == HELP
    assert kernel.ok("%cog").stdout == HELP
    usage = kernel.ok("%cog serve --help").stdout
    assert usage.startswith(
        "usage: %cog serve [--port PORT] [--host HOST] [--upload-url UPLOAD_URL]"
    )
    assert "  --thread              serve from a thread, not the kernel loop\n" in usage


def test_schema_describes_inputs_and_output(kernel, tmp_path):
    """%cog schema summarises the served schema; --json is the /openapi.json document."""
    kernel.ok(
        ECHO
        + "\nfrom cog import Path\ndef other(image: Path, n: int = 2) -> list[str]:\n    return []"
    )
    url = serve(kernel)
    wait_ready(url)
    assert kernel.ok("%cog schema").stdout == (
        "inputs:\n  text (string, required): what to echo\n  times (integer = 1)\noutput: string\n"
    )
    document = json.loads(kernel.ok("%cog schema --json").stdout)
    assert document == requests.get(url + "/openapi.json", timeout=10).json()
    assert kernel.ok("%cog schema other").stdout == (
        "inputs:\n  image (file, required)\n  n (integer = 2)\noutput: array\n"
    )


def test_status_shows_predictions_in_flight(kernel, tmp_path):
    """%cog status lists a running prediction and the BUSY health while it runs."""
    kernel.ok(
        gate_source(tmp_path)
        + """
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self) -> str:
        wait_for("go")
        return "went"
"""
    )
    url = serve(kernel)
    wait_ready(url)
    response = requests.post(
        url + "/predictions", json={"id": "held"}, headers={"Prefer": "respond-async"}, timeout=10
    )
    assert response.status_code == 202
    status = kernel.ok("%cog status").stdout.splitlines()
    assert status[1] == "  health:    BUSY (setup succeeded)"
    assert status[2].startswith("  in flight: held processing for ")
    assert status[3] == "  recent:    none"
    open_gate(tmp_path, "go")


def test_proxy_url_under_jupyterhub(kernel, tmp_path):
    """Behind JupyterHub the proxy URL is printed with the note on SSE and Accept."""
    kernel.ok(
        ECHO + "\nimport os\nos.environ['JUPYTERHUB_SERVICE_PREFIX'] = '/user/ada/'"
        "\nos.environ['JUPYTERHUB_PUBLIC_URL'] = 'https://hub.example.org/'"
    )
    cell = kernel.ok("%cog serve Predictor --port 0")
    port = kernel.value("__import__('nbcog').kernel.serving.servers()[-1].port")
    assert (
        f"nbcog: through the Jupyter proxy: https://hub.example.org/user/ada/proxy/{port}/\n"
        "       note: through the proxy, SSE streams only when the request's Accept header is "
        "exactly 'text/event-stream' (no other types listed); otherwise the proxy buffers the "
        "whole response\n"
    ) in cell.stdout
    status = kernel.ok("%cog status").stdout
    assert f"  proxy:     https://hub.example.org/user/ada/proxy/{port}/  (" in status


def test_predict_and_watch_show_live_widgets(kernel, tmp_path):
    """%cog predict shows a live prediction view; %cog watch lists predictions made over HTTP."""
    kernel.ok(
        """
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self, text: str) -> str:
        print("echoing", text)
        return text
"""
    )
    url = serve(kernel)
    cell = kernel.ok("%cog predict -i text=hi")
    assert cell.stdout == ""  # the log is in the view
    views = [d for d in cell.displays if "application/vnd.jupyter.widget-view+json" in d]
    assert views, cell.displays
    prediction = views[0]["text/plain"].split(":")[0]  # "prediction pred_..."
    # When it ends, the display is updated so a saved notebook keeps the final state.
    final = cell.updates[-1]
    assert final["text/plain"].startswith(f"{prediction}: succeeded in ")
    assert "hi" in final["text/html"]
    assert requests.post(url + "/predictions", json={"input": {"text": "x"}}, timeout=30).ok
    cell = kernel.ok("%cog watch")
    assert cell.displays[-1]["text/plain"] == "nbcog monitor: 2 predictions"
    assert "application/vnd.jupyter.widget-view+json" in cell.displays[-1]
