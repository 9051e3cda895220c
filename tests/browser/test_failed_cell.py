"""A failed `%cog predict` in JupyterLab reads once: the view's error line, a one-line cell error.

The view under the cell shows ``failed``, what the predictor raised (``ValueError: n=3 is not
supported``, not coglet's "Prediction failed: Prediction failed: ..."), and its traceback,
collapsed; the cell's own error is one line that marks it failed, so Run All stops there.
"""

from __future__ import annotations

import pytest
from browserkit import (
    chromium_page,
    jupyter_app,
    notebook_folder,
    open_notebook,
    require_browser,
)

pytestmark = pytest.mark.slow

DEFINE = """\
%load_ext nbcog
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self, n: int) -> str:
        print("checking", n)
        if n == 3:
            raise ValueError(f"n={n} is not supported")
        return "ok\""""
CELLS = [DEFINE, "%cog serve Predictor --port 0", "%cog predict -i n=3", "print('after' * 2)"]
PREDICT_CELL = 2

ENDED = """(index) => {
    const panel = window.jupyterapp.shell.currentWidget;
    const cell = panel.content.widgets[index].node;
    const prompt = cell.querySelector('.jp-InputPrompt')?.textContent ?? '';
    const status = cell.querySelector('.nbcog-view .nbcog-status')?.textContent;
    const idle = panel.sessionContext.session?.kernel?.status === 'idle';
    const stderr = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]';
    return idle && /\\[\\d+\\]/.test(prompt) && status === 'failed' && cell.querySelector(stderr);
}"""


def test_failed_predict_cell_shows_its_error_line_once(tmp_path):
    """The cell's visible text has `ValueError: n=3 ...` once, no coglet wrapping; Run All stops."""
    sync_api = require_browser()
    root = notebook_folder(tmp_path, "failed.ipynb", CELLS)
    with (
        jupyter_app("lab", root, tmp_path / "home") as base,
        chromium_page(sync_api, 1100, 1000, tmp_path / "page.png") as page,
    ):
        open_notebook(page, base, "lab", "failed.ipynb")
        page.wait_for_function(ENDED, arg=PREDICT_CELL)
        cell = page.locator(".jp-Notebook .jp-Cell").nth(PREDICT_CELL)
        cell.screenshot(path=str(tmp_path / "failed-cell.png"))
        shown = cell.locator(".jp-OutputArea").inner_text()
        error_line = cell.locator(".nbcog-view .nbcog-error-text").inner_text()
        traceback_open = cell.locator(".nbcog-view .nbcog-traceback").get_attribute("open")
        after = page.locator(".jp-Notebook .jp-Cell").nth(PREDICT_CELL + 1).inner_text()

    assert error_line == "ValueError: n=3 is not supported"
    assert shown.count("n=3 is not supported") == 1, shown
    assert "Prediction failed" not in shown
    assert "failed; the view above shows why" in shown  # the cell's error: one line
    assert shown.count("checking 3") == 1, shown
    assert traceback_open is None  # collapsed: its last line would repeat the error line
    assert "afterafter" not in after  # the failed cell stopped Run All
