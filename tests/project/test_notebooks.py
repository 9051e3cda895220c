"""Every notebook in ``notebooks/`` runs top to bottom in a fresh kernel, and says what it should.

The notebooks are a newcomer's first ten minutes, so each one is executed with nbclient in a real
ipykernel, in a temporary folder (they write files there), and what the reader is shown is
checked: printed values, displayed images, the files notebook 5 writes. The quickstart runs
cell by cell: after its serve cell, this process streams a prediction from the in-kernel server
over SSE and runs the notebook's own curl lines, as a reader pastes them into a terminal.

Displays are read as the union of their text forms (stream text, ``text/plain``, ``text/html``),
so the checks hold whether a magic shows a live widget (with its static HTML rendering) or
plain text.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
import pytest
import requests
from kernelkit import refused, sse_events, wait_ready
from nbclient import NotebookClient
from PIL import Image

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
CELL_TIMEOUT = 120
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# What a healthy notebook never prints: unhandled errors in callbacks, tasks and threads.
NOISE = ("Traceback", "Task was destroyed", "Exception in callback", "never retrieved")


def text(cell: Any) -> str:
    """Everything a cell showed as text: streams, then the text forms of its displays."""
    shown = ""
    for output in cell.outputs:
        if output.output_type == "stream":
            shown += output.text
        elif output.output_type in ("display_data", "execute_result"):
            for kind in ("text/plain", "text/html"):
                shown += "\n" + output.data.get(kind, "") + "\n"
    return shown


def images(cell: Any) -> list[Image.Image]:
    """The PNG images a cell displayed, decoded: image/png outputs, or inline in a view's HTML."""
    found = []
    for output in cell.outputs:
        if output.output_type not in ("display_data", "execute_result"):
            continue
        if "image/png" in output.data:
            found.append(output.data["image/png"])
        else:
            found += re.findall(
                r'<img src="data:image/png;base64,([^"]+)"', output.data.get("text/html", "")
            )
    return [Image.open(io.BytesIO(base64.b64decode(data))) for data in found]


class NotebookRun:
    """A notebook executing in a live kernel, one cell at a time, in order."""

    def __init__(self, notebook: Any, client: NotebookClient) -> None:
        self.notebook = notebook
        self.client = client
        self.next = 0

    def through(self, marker: str) -> Any:
        """Execute cells up to and including the next code cell containing ``marker``."""
        while self.next < len(self.notebook.cells):
            cell = self.notebook.cells[self.next]
            self.client.execute_cell(cell, self.next)
            self.next += 1
            if cell.cell_type == "code" and marker in cell.source:
                return cell
        pytest.fail(f"no code cell with {marker!r} left to run")

    def to_end(self) -> None:
        """Execute the remaining cells."""
        while self.next < len(self.notebook.cells):
            self.client.execute_cell(self.notebook.cells[self.next], self.next)
            self.next += 1

    def probe(self, source: str) -> str:
        """Execute ``source`` as an extra cell here, in the notebook's kernel; what it printed.

        The cell goes into this run's copy in memory only, never into the notebook's file.
        """
        cell = nbformat.v4.new_code_cell(source)
        self.notebook.cells.insert(self.next, cell)
        self.client.execute_cell(cell, self.next)
        self.next += 1
        return text(cell)

    def cell(self, marker: str) -> Any:
        """The code cell containing ``marker`` (already executed)."""
        found = [c for c in self.notebook.cells if c.cell_type == "code" and marker in c.source]
        assert len(found) == 1, f"{len(found)} code cells contain {marker!r}"
        return found[0]

    def assert_quiet(self) -> None:
        """No cell printed a traceback or an asyncio complaint."""
        for cell in self.notebook.cells:
            for output in cell.get("outputs", []):
                if output.output_type == "stream":
                    for marker in NOISE:
                        assert marker not in output.text, f"{marker!r} in:\n{output.text}"


@contextmanager
def notebook(name: str | Path, folder: Path) -> Iterator[NotebookRun]:
    """Start a fresh kernel in ``folder`` for a copy of notebook ``name``; shut it down after.

    The copy and everything the notebook writes stay in ``folder``, never in ``notebooks/``.
    """
    source = NOTEBOOKS / name  # an absolute path stays as it is
    copy = folder / source.name
    if copy != source:
        shutil.copy(source, copy)
    nb = nbformat.read(copy, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(folder)}},
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    with client.setup_kernel(env=env):
        run = NotebookRun(nb, client)
        yield run
        run.assert_quiet()


def words(template: str) -> list[str]:
    """The chunks a predictor streaming ``template`` word by word yields."""
    return [word if i == 0 else " " + word for i, word in enumerate(template.split())]


def test_quickstart_streams_to_a_client_outside_the_kernel(tmp_path):
    """Quickstart serves on 5290; mid-run, an outside client streams SSE; its curl lines work."""
    greeting = "Hello {}! This reply is streamed word by word from a notebook."
    with notebook("01-quickstart.ipynb", tmp_path) as run:
        serve = run.through("%cog serve")
        assert "nbcog: serving Predictor at http://127.0.0.1:5290" in text(serve)
        url = "http://127.0.0.1:5290"
        assert wait_ready(url)["status"] == "READY"

        payload = {"input": {"name": "pytest", "delay": 0.3}}
        headers = {"Accept": "text/event-stream"}
        with requests.post(
            url + "/predictions", json=payload, headers=headers, stream=True, timeout=60
        ) as response:
            assert response.status_code == 200
            assert response.headers["Content-Type"] == "text/event-stream"
            arrived = [(time.monotonic(), event, data) for event, data in sse_events(response)]
        names = [event for _, event, _ in arrived]
        assert names[0] == "start"
        assert names[-1] == "completed"
        outputs = [(at, data) for at, event, data in arrived if event == "output"]
        chunks = words(greeting.format("pytest"))
        assert [data for _, data in outputs] == [
            {"chunk": chunk, "index": index} for index, chunk in enumerate(chunks)
        ]
        assert [data for _, event, data in arrived if event == "log"] == [
            {"source": "stdout", "data": "greeting pytest\n"}
        ]
        sse_id = arrived[0][2]["id"]
        completed = arrived[-1][2]
        assert completed == {
            "id": sse_id,
            "status": "succeeded",
            "output": chunks,
            "logs": "greeting pytest\n",
            "metrics": {"predict_time": completed["metrics"]["predict_time"]},
        }
        # 11 more words at 0.3 s each follow the first: they arrived while it ran.
        assert arrived[-1][0] - outputs[0][0] > 1.0

        curl_cell = next(c for c in run.notebook.cells if "curl -sN" in c.source)
        script = re.search(r"```bash\n(.*?)```", curl_cell.source, re.DOTALL).group(1)
        ran = subprocess.run(
            ["bash", "-e", "-c", script], capture_output=True, text=True, timeout=60, check=True
        )
        assert ran.stderr == ""  # curl -s and -sN: no progress meter beside the output
        pasted = ran.stdout
        sync_body, end = json.JSONDecoder().raw_decode(pasted)  # curl -s adds no newline
        streamed = pasted[end:]
        assert sync_body["status"] == "succeeded"
        assert sync_body["output"] == words(greeting.format("curl"))
        assert sync_body["logs"] == "greeting curl\n"
        assert streamed.startswith("event: start\ndata: {")
        assert 'event: output\ndata: {"chunk":" curl!","index":1}\n\n' in streamed
        assert 'event: log\ndata: {"data":"greeting curl\\n","source":"stdout"}\n\n' in streamed
        assert streamed.rsplit("\n\n", 2)[-2].startswith("event: completed\ndata: {")

        predicted = run.through("%cog predict")
        assert greeting.format("notebook") in text(predicted)
        status = text(run.through("%cog status"))
        assert "READY" in status
        for prediction_id in (sse_id, sync_body["id"]):
            assert prediction_id in status
        assert "stopped Predictor" in text(run.through("%cog stop"))
        assert refused(url)
        run.to_end()


def sse_printout(cell: Any) -> list[tuple[str, Any]]:
    """The ``event  {json}`` lines notebook 2 prints, parsed back."""
    pairs = []
    for line in text(cell).splitlines():
        event, _, data = line.partition(" ")
        pairs.append((event, json.loads(data)))
    return pairs


def test_streaming_notebook_shows_metrics_logs_cancel_and_replay(tmp_path):
    """Notebook 2 prints the event stream, cancels, and replays to a late subscriber."""
    with notebook("02-streaming-logs-metrics.ipynb", tmp_path) as run:
        run.to_end()
        assert "serving Predictor at http://127.0.0.1:5291 (thread)" in text(run.cell("--thread"))
        predicted = text(run.cell("%cog predict"))
        assert "generating 30 tokens\n10 tokens so far\n20 tokens so far\n30 tokens so far\n" in (
            predicted
        )
        assert "Once upon a time a model lived in a notebook. Every morning" in predicted

        events = sse_printout(run.cell("Accept"))
        assert events[0][0] == "start"
        assert events[1] == ("log", {"data": "generating 8 tokens\n", "source": "stdout"})
        chunks = [data["chunk"] for event, data in events if event == "output"]
        assert "".join(chunks) == "Once upon a time a model lived in"
        counts = [d for e, d in events if e == "metric" and d["name"] == "token_count"]
        assert counts == [{"mode": "increment", "name": "token_count", "value": 1}] * 8
        speeds = [d for e, d in events if e == "metric" and d["name"] == "tokens_per_second"]
        assert len(speeds) == 8
        assert all(d["mode"] == "replace" and d["value"] > 0 for d in speeds)
        event, completed = events[-1]
        assert event == "completed"
        assert completed["status"] == "succeeded"
        assert completed["output"] == chunks
        assert completed["metrics"]["token_count"] == 8

        accepted = text(run.cell("respond-async"))
        assert accepted == "202 {'id': 'story-1', 'status': 'starting'}\n"
        late = text(run.cell("requests.put"))
        assert "cancel: 200 {}\n" in late
        assert 'start     {"id": "story-1", "status": "processing"}' in late
        assert "first event: start\n" in late
        assert late.endswith("status: canceled\n")
        outputs = int(re.search(r"events, (\d+) outputs", late).group(1))
        assert outputs >= 41
        assert "story-1 canceled" in text(run.cell("%cog status"))
        assert refused("http://127.0.0.1:5291")


def test_images_notebook_shows_images_inline_and_over_http(tmp_path):
    """Notebook 3 turns landscape.png into three images, shown inline and received as data URLs."""
    with notebook("03-images-and-files.ipynb", tmp_path) as run:
        run.to_end()
        with Image.open(tmp_path / "landscape.png") as picture:
            assert picture.size == (240, 160)
        predicted = run.cell("%cog predict")
        assert "got a 240x160 image; results are 120x80\n" in text(predicted)
        shown = images(predicted)
        assert [(image.size, image.mode) for image in shown] == [
            ((120, 80), "L"),
            ((120, 80), "RGB"),
            ((120, 80), "RGB"),
        ]

        http = run.cell("to_thread")
        printed = text(http)
        assert printed.startswith("succeeded - got a 240x160 image; results are 100x67\n")
        assert printed.count("data:image/png;base64, ... (") == 3
        assert [image.size for image in images(http)] == [(100, 67)] * 3
        assert refused("http://127.0.0.1:5292")


def test_async_notebook_runs_four_at_once_and_receives_webhooks(tmp_path):
    """Notebook 4: four async predictions at once, a 409 for the fifth, completed webhooks."""
    with notebook("04-async-webhooks-concurrency.ipynb", tmp_path) as run:
        run.through("the webhooks did not arrive")
        # The notebook's receiver lists every webhook body in arrival order; the start ones
        # are queued for delivery as each prediction starts, before its 1.5 s await.
        arrivals = json.loads(
            run.probe('print(json.dumps([[b["id"], b["status"]] for b in deliveries]))')
        )
        run.to_end()
        created = text(run.cell("asyncio.gather")).splitlines()
        assert all(
            re.fullmatch(r"202 \{'id': 'pred_[0-9a-f]+', 'status': 'starting'\}", line)
            for line in created[:4]
        ), created
        assert created[4:] == [
            "health: BUSY",
            "a fifth: 409 {'error': 'At capacity - all prediction slots busy', 'status': 'failed'}",
        ]

        ids = {re.search(r"'id': '(pred_[0-9a-f]+)'", line).group(1) for line in created[:4]}
        first_end = [status for _, status in arrivals].index("succeeded")
        started_before = {id for id, status in arrivals[:first_end] if status == "processing"}
        assert started_before == ids, arrivals  # all four ran at once, not one after another
        waited = text(run.cell("the webhooks did not arrive"))
        took = r"4 predictions of 1.5 s each took [0-9.]+ s together"
        assert re.fullmatch(took, waited.splitlines()[0])
        assert waited.splitlines()[1:] == [
            "positive +0.8478  I love this notebook, it is wonderful!",
            "negative -0.7506  The build failed again. Terrible.",
            "neutral  +0.0000  The server listens on a port.",
            "positive +0.7430  Streaming tokens is fun :)",
            "webhooks received: ['processing', 'succeeded']",
        ]
        assert refused("http://127.0.0.1:5293")


def test_notebook_to_cog_exports_and_checks_with_coglet(tmp_path, monkeypatch):
    """Notebook 5 exports its cells' predictor with %cog export into a temp folder of its own
    (nothing else is written) and --check gets coglet's and nbcog's answers alike."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # the notebook's mkdtemp and the check's venv
    with notebook("05-notebook-to-cog.ipynb", tmp_path) as run:
        run.to_end()
        assert "Models Start In Notebooks" in text(run.cell("%cog predict"))
        exported = text(run.cell("mkdtemp"))
        found = re.search(r"exported predict.py:Predictor to (\S+): ", exported)
        assert found is not None, exported
        project = Path(found[1])
        shown = text(run.cell("rglob"))
        checked = text(run.cell("--check"))
    assert project.parent.parent == scratch
    source = (project / "predict.py").read_text()
    assert 'STYLES = ("shout", "whisper", "title")' in source
    assert "def restyle(text: str, style: str) -> str:" in source
    assert "class Predictor(BaseRunner)" in source
    assert "tried out on its own" not in source
    assert "get_ipython" not in source
    assert (
        (project / "cog.yaml")
        .read_text()
        .endswith('build:\n  python_version: "3.11"\npredict: "predict.py:Predictor"\n')
    )
    assert source in shown
    schema = json.loads((project / ".cog" / "openapi_schema.json").read_text())
    assert schema["paths"]["/predictions"]["post"]["x-cog-streaming"] is True
    assert schema["components"]["schemas"]["style"]["enum"] == ["shout", "whisper", "title"]
    for request in ("GET /openapi.json", "(-i inputs)", "(SSE)", "(invalid)"):
        row = next(line for line in checked.splitlines() if request in line)
        assert row.endswith("yes"), checked
    assert "same answers; checked in " in checked
    assert sorted(p.name for p in tmp_path.iterdir()) == ["05-notebook-to-cog.ipynb", "tmp"]
    assert refused("http://127.0.0.1:5295")


def test_readme_example_and_curl_lines_work(tmp_path):
    """The README's fifteen-line example serves in a kernel and its curl lines get the greeting."""
    readme = (ROOT / "README.md").read_text()
    example = re.search(r"## In fifteen lines\n\n```python\n(.*?)```", readme, re.DOTALL)[1]
    curls = re.search(r"```bash\n(curl .*?)```", readme, re.DOTALL)[1]
    served = re.search(r"%cog serve Predictor --port (\d+)", example)
    port = "5294"  # the README names the quickstart's port; tests keep to their own ports
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(example.replace(served[0], f"%cog serve Predictor --port {port}"))
    ]
    path = tmp_path / "readme.ipynb"
    nbformat.write(nb, path)
    with notebook(path, tmp_path) as run:
        cell = run.through("%cog predict")
        assert "Hello, notebook! " in text(cell)
        pasted = subprocess.run(
            ["bash", "-e", "-c", curls.replace(f"127.0.0.1:{served[1]}", f"127.0.0.1:{port}")],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert pasted.stderr == ""  # -s: no progress meter beside the stream
        body, end = json.JSONDecoder().raw_decode(pasted.stdout)  # curl -s adds no newline
        assert body["status"] == "succeeded"
        assert body["output"] == ["Hello, ", "world! "]
        streamed = pasted.stdout[end:]
        assert streamed.startswith("event: start\n")
        assert 'event: output\ndata: {"chunk":"world! ","index":1}\n\n' in streamed
        assert streamed.rsplit("\n\n", 2)[-2].startswith("event: completed\ndata: {")
