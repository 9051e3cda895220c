"""How failures read in the notebook (a real ipykernel): ``%cog status`` after a failed setup,
an ``Input`` default that does not fit its type, and a failed prediction."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import requests
from kernelkit import ROOT, kernel, serve

pytestmark = pytest.mark.slow
__all__ = ["kernel"]  # the fixture, imported for pytest

BROKEN = """
from cog import BaseRunner

class Broken(BaseRunner):
    def setup(self) -> None:
        print("loading weights")
        raise RuntimeError("no weights at /models/w.bin")

    def run(self) -> str:
        return ""
"""

BAD_DEFAULT = """
from cog import BaseRunner, Input

class Predictor(BaseRunner):
    def run(self, count: int = Input(default="three")) -> str:
        return str(count)
"""

FAILING = """
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self, n: int) -> str:
        print("checking", n)
        if n == 3:
            raise ValueError(f"n={n} is not supported")
        return "ok"
"""

BAD_DEFAULT_MESSAGE = (
    'ValueError: invalid default for input count: "three" is not of type "integer"'
)


def test_status_after_failed_setup_shows_its_logs_and_traceback(kernel, tmp_path):
    """%cog predict points at %cog status, which shows setup's prints and its traceback."""
    kernel.ok(BROKEN)
    kernel.ok("%cog serve Broken --port 0")
    kernel.wait_for_update("failed")
    cell = kernel.run("%cog predict")
    assert cell.usage_error == "setup of Broken failed; `%cog status` shows its logs"
    lines = kernel.ok("%cog status").stdout.splitlines()
    assert "  health:    SETUP_FAILED (setup failed)" in lines
    logs = lines[lines.index("  setup logs:") + 1 :]
    assert logs[:2] == ["  | loading weights", "  | Traceback (most recent call last):"]
    assert re.fullmatch(r'  \|   File ".+\.py", line 6, in setup', logs[2]), logs
    assert logs[3:] == [
        '  |     raise RuntimeError("no weights at /models/w.bin")',
        "  | RuntimeError: no weights at /models/w.bin",
    ]


def test_bad_input_default_is_an_error_naming_the_input(kernel, tmp_path):
    """Input(default="three") on an int fails %cog serve and %cog schema, naming the input."""
    kernel.ok(BAD_DEFAULT)
    cell = kernel.run("%cog serve Predictor --port 0")
    assert cell.usage_error == f"cannot serve Predictor: {BAD_DEFAULT_MESSAGE}"
    assert kernel.value("len(__import__('nbcog').kernel.serving.servers())") == 0
    cell = kernel.run("%cog schema Predictor")
    assert cell.usage_error == f"cannot load Predictor: {BAD_DEFAULT_MESSAGE}"
    # A file is imported by setup (on its thread): the failed setup names the input.
    (tmp_path / "bad.py").write_text(BAD_DEFAULT)
    kernel.ok("%cog serve bad.py:Predictor --port 0")
    assert kernel.wait_for_update("failed").splitlines()[-1] == f"  | {BAD_DEFAULT_MESSAGE}"
    status = kernel.ok("%cog status").stdout
    assert status.endswith(f"  setup logs:\n  | {BAD_DEFAULT_MESSAGE}\n")


def _user_traceback(lines: list[str]) -> None:
    assert lines[0] == "Traceback (most recent call last):"
    assert re.fullmatch(r'  File ".+\.py", line 7, in run', lines[1]), lines
    assert lines[2:] == [
        '    raise ValueError(f"n={n} is not supported")',
        "ValueError: n=3 is not supported",
    ]


def test_failed_prediction_reads_as_its_exception_and_traceback(kernel, tmp_path):
    """Without a view a failure is `ValueError: ...` + the user's traceback; HTTP keeps coglet's."""
    kernel.ok(FAILING)
    url = serve(kernel)
    for code in (
        "%cog predict -i n=3 --plain",
        "__import__('nbcog').kernel.serving.servers()[-1].predict(n=3)",
    ):
        cell = kernel.run(code)
        assert cell.error == {
            "ename": "PredictionFailed",
            "evalue": "ValueError: n=3 is not supported",
        }
        _user_traceback(cell.traceback)
        assert cell.stdout == "checking 3\n"  # the logs once, as they came
    body = requests.post(url + "/predictions", json={"input": {"n": 3}}, timeout=30).json()
    assert body["error"] == "Prediction failed: Prediction failed: ValueError: n=3 is not supported"
    status = kernel.ok("%cog status")
    assert "tornado.access" not in status.text + "".join(kernel.orphans)  # quiet per request
    recent = status.stdout.split("  recent:    ", 1)[1].splitlines()[0]
    assert re.fullmatch(
        r"(pred_\w+ failed in \d+\.\d\d s: ValueError: n=3 is not supported(; )?){3}", recent
    ), recent


def test_failed_predict_in_a_view_reads_its_error_and_traceback_once(kernel, tmp_path):
    """Failed `%cog predict`: the view says `ValueError: ...` and the traceback once; cell fails."""
    kernel.ok(FAILING)
    serve(kernel)
    cell = kernel.run("%cog predict -i n=3")
    assert cell.error == {"ename": "PredictionFailed", "evalue": "ValueError: n=3 is not supported"}
    prediction = cell.displays[0]["text/plain"].split(":")[0].split()[-1]
    assert cell.traceback == [f"PredictionFailed: {prediction} failed; the view above shows why"]
    assert cell.stdout == cell.stderr == ""
    final = cell.updates[-1]
    shown = "\n".join([*cell.traceback, final["text/plain"]])
    assert shown.count("n=3 is not supported") == 1, shown
    assert "Prediction failed" not in shown + final["text/html"]
    lines = final["text/plain"].splitlines()
    assert re.fullmatch(rf"prediction {prediction}: failed in \d+\.\d\d s", lines[0]), lines
    _user_traceback(lines[1:5])
    assert lines[5:] == ["logs:", "  checking 3"]
    html = final["text/html"]
    assert html.count("ValueError: n=3 is not supported") == 2  # the error line, the traceback
    assert html.index("ValueError: n=3") < html.index("<details><summary>Traceback</summary>")


def test_terminal_ipython_serves_from_a_thread(tmp_path):
    """In IPython without a kernel (no running loop) %cog serve uses a thread, not an assert."""
    script = tmp_path / "session.ipy"
    script.write_text(
        "%load_ext nbcog\n"
        + FAILING
        + "%cog serve Predictor --port 0\n%cog predict -i n=2\n%cog predict -i n=3\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "IPython", "--colors=NoColor", "--no-banner", str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    printed = done.stdout + done.stderr
    assert re.search(r"nbcog: serving Predictor at http://127\.0\.0\.1:\d+ \(thread\)\n", printed)
    assert "AssertionError" not in printed
    assert "checking 2\n" in printed
    assert "\nok" in printed, printed  # the output (the setup thread may print around it)
    assert "ValueError: n=3 is not supported\n" in printed
