"""Take the README's screenshots of `%cog predict` streaming: docs/streaming-*.png.

Runs the notebook of tests/browser/test_live_cell.py (a predictor yielding 20 tokens 0.25 s
apart, served from the kernel, `%cog predict` in a blocking cell) in JupyterLab with Debian's
chromium, and saves the cell mid-run and finished. Run it by hand after a visible change:

    python scripts/streaming_screenshots.py [output-dir]    # default: docs/
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests" / "support"), str(REPO / "tests" / "browser")]

from browserkit import CHROMIUM, CHROMIUM_ARGS, WAIT_MS, jupyter_app, notebook_json  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402
from test_live_cell import cells, run_live_prediction  # noqa: E402


def main() -> None:
    """Write streaming-mid-run.png and streaming-finished.png."""
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "notebooks"
        root.mkdir()
        (root / "live.ipynb").write_text(json.dumps(notebook_json(cells(""))))
        with jupyter_app("lab", root, Path(tmp) / "home") as base, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 900, "height": 1000})
            page.set_default_timeout(WAIT_MS)
            try:
                run_live_prediction(page, base, "lab", out, mid_token=8)
            finally:
                browser.close()
    print(f"wrote {out / 'streaming-mid-run.png'} and {out / 'streaming-finished.png'}")


if __name__ == "__main__":
    main()
