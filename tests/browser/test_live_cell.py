"""`%cog predict` streams live under its running cell, in a real browser (issue 10).

A notebook defines ``Slow`` (20 tokens, 0.25 s apart), serves it (kernel loop, or ``--thread``)
and runs ``%cog predict`` in a cell that blocks until the prediction ends. A sampler in the page
records, every 50 ms, what the cell's view shows and whether the cell is still running. The
test fails unless some sample, taken while the cell still ran, shows some tokens but not yet the
last: the view must draw as the tokens come, with no answer from the busy kernel. Afterwards the
output text and a log line each appear exactly once in the cell's output area (visible text),
and the saved notebook keeps the final text once. JupyterLab and Notebook 7 alike. A page
reloaded mid-stream (its model restored from the kernel) gets the state so far, then the rest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from browserkit import (
    chromium_page,
    jupyter_app,
    notebook_folder,
    open_notebook,
    require_browser,
    save_notebook,
)

pytestmark = pytest.mark.slow

TOKENS = 20
LAST = f"token{TOKENS - 1} "
DEFINE = f"""\
%load_ext nbcog
import time
from cog import BaseRunner, ConcatenateIterator, streaming

class Slow(BaseRunner):
    @streaming
    def run(self, n: int = {TOKENS}, pause: float = 0.25) -> ConcatenateIterator[str]:
        print("loading the model")
        for i in range(n):
            self.record_metric("tokens", 1, "incr")
            yield f"token{{i}} "
            time.sleep(pause)
        print("generation finished")"""
PREDICT_CELL = 2

# Installed in the page: every 50 ms, what the predict cell's view shows and its prompt.
SAMPLER = """(index) => {
    window.nbcogSamples = [];
    const panel = window.jupyterapp.shell.currentWidget;
    const timer = setInterval(() => {
        const cell = panel.content.widgets[index].node;
        const prompt = cell.querySelector('.jp-InputPrompt')?.textContent ?? '';
        const view = cell.querySelector('.nbcog-view');
        window.nbcogSamples.push({
            running: prompt.includes('*'),
            status: view?.querySelector('.nbcog-status')?.textContent ?? '',
            text: view?.querySelector('.nbcog-output-text')?.textContent ?? '',
        });
        if (window.nbcogSamples.length > 20000) clearInterval(timer);
    }, 50);
}"""

FINISHED = """(index) => {
    const cell = window.jupyterapp.shell.currentWidget.content.widgets[index].node;
    const prompt = cell.querySelector('.jp-InputPrompt')?.textContent ?? '';
    const status = cell.querySelector('.nbcog-view .nbcog-status')?.textContent;
    return /\\[\\d+\\]/.test(prompt) && status === 'succeeded';
}"""

PARTIAL = f"""([index, token]) => {{
    const cell = window.jupyterapp.shell.currentWidget.content.widgets[index].node;
    const text = cell.querySelector('.nbcog-view .nbcog-output-text')?.textContent ?? '';
    return text.includes(token) && !text.includes({LAST!r});
}}"""


def cells(mode: str) -> list[str]:
    """The notebook: define Slow, serve it, predict in a blocking cell."""
    return [DEFINE, f"%cog serve Slow --port 0{mode}", f"%cog predict -i n={TOKENS}"]


def run_live_prediction(
    page: Any, base: str, app: str, shots: Path, mid_token: int = 3
) -> list[dict[str, Any]]:
    """Run the notebook; screenshot the cell mid-run and finished; return the page's samples."""
    open_notebook(page, base, app, "live.ipynb")
    page.evaluate(SAMPLER, PREDICT_CELL)
    cell = page.locator(".jp-Notebook .jp-Cell").nth(PREDICT_CELL)
    page.wait_for_function(PARTIAL, arg=[PREDICT_CELL, f"token{mid_token} "])
    cell.screenshot(path=str(shots / "streaming-mid-run.png"))
    page.wait_for_function(FINISHED, arg=PREDICT_CELL)
    page.locator(".nbcog-view .nbcog-elapsed").first.wait_for()
    cell.screenshot(path=str(shots / "streaming-finished.png"))
    return page.evaluate("() => window.nbcogSamples")


@pytest.mark.parametrize("app", ["lab", "notebook"])
@pytest.mark.parametrize("mode", ["", " --thread"], ids=["kernel-loop", "thread"])
def test_cog_predict_streams_live_in_its_running_cell(tmp_path, app, mode):
    """Tokens show while the %cog predict cell still runs; then output and logs show once."""
    sync_api = require_browser()
    root = notebook_folder(tmp_path, "live.ipynb", cells(mode))
    with (
        jupyter_app(app, root, tmp_path / "home") as base,
        chromium_page(sync_api, 1100, 1300, tmp_path / "page.png") as page,
    ):
        samples = run_live_prediction(page, base, app, tmp_path)
        output = page.locator(".jp-Notebook .jp-Cell").nth(PREDICT_CELL)
        shown = output.locator(".jp-OutputArea").inner_text()
        save_notebook(page)

    # Live: partial output was on screen while the cell was still running.
    partial = [
        s for s in samples if s["running"] and "token1 " in s["text"] and LAST not in s["text"]
    ]
    assert partial, f"no partial output while the cell ran; last samples: {samples[-3:]}"
    assert any(s["status"] == "processing" for s in partial)
    # Once: the output text and each log line appear exactly once in the output area.
    assert shown.count(LAST.strip()) == 1, shown
    assert shown.count("loading the model") == 1, shown
    assert shown.count("generation finished") == 1, shown
    assert "Out[" not in shown
    saved = json.loads((root / "live.ipynb").read_text())["cells"][PREDICT_CELL]["outputs"]
    assert len(saved) == 1, saved  # the view's display, replaced by its final state
    plain = "".join(saved[0]["data"]["text/plain"])
    assert plain.count(LAST.strip()) == 1 and plain.count("loading the model") == 1


RELOADED = f"""\
import nbcog
from nbcog.service import CreateRequest, Mode
from nbcog.widget import PredictionView
handle = nbcog.kernel.serving.servers()[-1]
service = handle.service()
entry = service.create(CreateRequest(input={{"n": {2 * TOKENS}}}), mode=Mode.ASYNC)
PredictionView(entry, service, base_url=handle.url)"""

OUTPUT_TEXT = "() => document.querySelector('.nbcog-view .nbcog-output-text')?.textContent ?? ''"


def test_reloaded_page_recovers_a_running_view(tmp_path):
    """After a page reload mid-stream, the view shows everything so far, then the rest, once."""
    sync_api = require_browser()
    root = notebook_folder(tmp_path, "live.ipynb", [DEFINE, "%cog serve Slow --port 0", RELOADED])
    with (
        jupyter_app("lab", root, tmp_path / "home") as base,
        chromium_page(sync_api, 1100, 1300) as page,
    ):
        open_notebook(page, base, "lab", "live.ipynb")  # the cell returns: the kernel is idle
        page.wait_for_function(f"() => ({OUTPUT_TEXT})().includes('token5 ')")
        save_notebook(page)
        page.reload()
        # The restored model asks for the full state: tokens from before the reload are back
        # while the prediction still runs.
        page.wait_for_function(
            f"""() => {{
                const text = ({OUTPUT_TEXT})();
                const status = document.querySelector('.nbcog-view .nbcog-status')?.textContent;
                return status === 'processing' && text.startsWith('token0 token1 ');
            }}"""
        )
        page.wait_for_selector(".nbcog-view .nbcog-status[data-status=succeeded]")
        text = page.evaluate(OUTPUT_TEXT)
    assert text == "".join(f"token{i} " for i in range(2 * TOKENS))  # no token lost or doubled
