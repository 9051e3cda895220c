"""Reload on save: ``python -m nbcog serve file.py:Name --reload`` in a real subprocess, and the
watcher's parts (``nbcog/runner/watching.py``)."""

from __future__ import annotations

import os
import re
import sys
import threading
from pathlib import Path

import pytest
import requests
from cliprocs import run_cli, write
from helpers import wait_until

from nbcog.runner.watching import (
    Save,
    SourceWatcher,
    forget_local_modules,
    local_modules,
    predictor_file,
    syntax_error,
)

PREDICTOR = """
from cog import BaseRunner
from helpers import suffix

class Predictor(BaseRunner):
    def setup(self) -> None:
        print("setup {version}")

    def run(self, text: str) -> str:
        return "{version} " + text + suffix()
"""
HELPERS = """
def suffix() -> str:
    return "{mark}"
"""
IDLE_SECONDS = 5.0
IDLE_CPU_LIMIT = 0.25
"""CPU seconds a watching, idle server may use in ``IDLE_SECONDS`` (5 %; measured: ~0)."""


def project(tmp_path: Path, version: str = "v1", mark: str = "!") -> Path:
    write(tmp_path, "helpers.py", HELPERS.format(mark=mark))
    return write(tmp_path, "predict.py", PREDICTOR.format(version=version))


def output(url: str, text: str = "a") -> str | None:
    """The output of a sync prediction, or None while the server is not ready (or when the
    reload cancelled this very request: a 200 whose status is ``canceled``, with no output)."""
    response = requests.post(url + "/predictions", json={"input": {"text": text}}, timeout=30)
    if response.status_code != 200 or response.json()["status"] != "succeeded":
        return None
    return response.json()["output"]


def save(path: Path, text: str) -> None:
    """Write as editors do: a new file renamed over the old one."""
    temporary = path.with_suffix(".py.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def served(launch, tmp_path):
    """``serve predict.py:Predictor --reload`` on a free port, READY with v1."""
    project(tmp_path)
    server = launch(["serve", "predict.py:Predictor", "--reload"], cwd=tmp_path)
    server.wait_ready()
    assert output(server.url) == "v1 a!"
    wait_until(lambda: "nbcog: reloading on save of " in server.stderr(), "the watcher")
    return server


def test_saving_the_file_reloads_on_the_same_port(served, tmp_path):
    """A save of predict.py: the next requests get the new code, on the same port and URL."""
    save(tmp_path / "predict.py", PREDICTOR.format(version="v2"))
    wait_until(lambda: output(served.url) == "v2 a!", "the new code served")
    assert "predict.py saved: reloaded predict.py:Predictor at " + served.url in served.stderr()
    wait_until(
        lambda: served.stderr().count(": READY\n") == 2, "the reload's setup, told by the console"
    )


def test_saving_a_local_module_reloads(served, tmp_path):
    """A save of helpers.py (imported by predict.py from its folder) reloads it too."""
    save(tmp_path / "helpers.py", HELPERS.format(mark="?"))
    wait_until(lambda: output(served.url) == "v1 a?", "the new helper served")
    assert "helpers.py saved: reloaded" in served.stderr()


def test_a_syntax_error_keeps_the_old_code_serving(served, tmp_path):
    """A save that does not compile: old code still answers, the error is printed once."""
    broken = PREDICTOR.format(version="v2") + "\ndef broken(:\n"
    save(tmp_path / "predict.py", broken)
    wait_until(lambda: "not reloaded" in served.stderr(), "the syntax error report")
    assert output(served.url) == "v1 a!"
    assert requests.get(served.url + "/health-check", timeout=10).json()["status"] == "READY"
    stderr = served.stderr()
    assert stderr.count("predict.py saved, not reloaded (the old code keeps serving)") == 1
    assert stderr.count("SyntaxError") == 1
    assert "def broken(:" in stderr
    save(tmp_path / "predict.py", PREDICTOR.format(version="v3"))
    wait_until(lambda: output(served.url) == "v3 a!", "the fixed code served")
    assert served.stderr().count("SyntaxError") == 1


SLOW = """
import os, time
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self, text: str) -> str:
        open("started", "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists("never") and time.monotonic() < deadline:
            time.sleep(0.01)
        return "{version} " + text
"""


def test_a_save_cancels_predictions_in_flight(launch, tmp_path):
    """A prediction running when the file is saved ends canceled; the next gets the new code."""
    write(tmp_path, "predict.py", SLOW.format(version="v1"))
    server = launch(["serve", "predict.py:Predictor", "--reload"], cwd=tmp_path)
    server.wait_ready()
    wait_until(lambda: "nbcog: reloading on save of " in server.stderr(), "the watcher")
    answers: list[dict] = []
    body = {"input": {"text": "a"}}

    def predict() -> None:
        answers.append(requests.post(server.url + "/predictions", json=body, timeout=60).json())

    running = threading.Thread(target=predict)
    running.start()
    wait_until(lambda: (tmp_path / "started").exists(), "the prediction to start")
    save(tmp_path / "predict.py", SLOW.format(version="v2").replace('"never"', '"started"'))
    running.join(60)
    assert answers[0]["status"] == "canceled"
    wait_until(lambda: output(server.url) == "v2 a", "the new code served")
    assert "cancelled 1 in flight" in server.stderr()


def test_idle_watching_server_uses_no_cpu(served):
    """Over 5 s without requests or saves, the watching server uses (almost) no CPU time."""
    pid = served.proc.pid
    before = cpu_seconds(pid)
    idle = threading.Event()
    idle.wait(IDLE_SECONDS)  # the measurement window itself, not a wait for a condition
    used = cpu_seconds(pid) - before
    print(f"idle CPU over {IDLE_SECONDS:.0f} s: {used:.3f} s")
    assert used <= IDLE_CPU_LIMIT


def test_reload_needs_a_file_reference(tmp_path):
    """``--reload`` with a module reference exits 2 and says to give file.py:Name."""
    project(tmp_path)
    done = run_cli(["serve", "predict:Predictor", "--reload", "--port", "0"], cwd=tmp_path)
    assert done.returncode == 2
    assert "give file.py:Name" in done.stderr


# -- the watcher's parts ---------------------------------------------------------------------


def test_syntax_error_says_where(tmp_path):
    """``syntax_error``: None for good code; Python's own message, with the line, for bad code."""
    good = write(tmp_path, "good.py", "x = 1\n")
    bad = write(tmp_path, "bad.py", "x = (\n")
    assert syntax_error(good) is None
    message = syntax_error(bad)
    assert message is not None
    assert re.search(r'File ".*bad\.py", line 1', message)
    assert "SyntaxError" in message


def test_local_modules_are_those_under_the_folder(tmp_path, monkeypatch):
    """Modules imported from the folder are local (and forgotten on reload); others are not."""
    write(tmp_path, "mylocal_mod_i15.py", "VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import mylocal_mod_i15  # noqa: F401

    found = local_modules(tmp_path.resolve())
    assert found == {(tmp_path / "mylocal_mod_i15.py").resolve(): "mylocal_mod_i15"}
    assert forget_local_modules(tmp_path.resolve()) == ["mylocal_mod_i15"]
    assert "mylocal_mod_i15" not in sys.modules
    assert predictor_file("predict.py:P") == Path("predict.py").resolve()
    with pytest.raises(ValueError, match=r"file\.py:Name"):
        predictor_file("pkg.mod:P")


def test_watcher_reports_each_save_once(tmp_path):
    """The watcher thread reports a save of the file once, with its syntax error if any."""
    path = write(tmp_path, "predict.py", "x = 1\n")
    saves: list[Save] = []
    arrived = threading.Condition()

    def on_save(save_: Save) -> None:
        with arrived:
            saves.append(save_)
            arrived.notify_all()

    ready = threading.Event()
    watcher = SourceWatcher(f"{path}:P", on_save, ready.set)
    watcher.start()
    try:
        assert ready.wait(30)
        assert watcher.ready.is_set()
        write(tmp_path, "unrelated.txt", "ignored\n")
        save(path, "x = (\n")
        with arrived:
            assert arrived.wait_for(lambda: saves, timeout=30)
        save(path, "x = 2\n")
        with arrived:
            assert arrived.wait_for(lambda: len(saves) >= 2, timeout=30)
    finally:
        watcher.stop()
    assert [s.changed for s in saves] == [(path.resolve(),), (path.resolve(),)]
    assert saves[0].error is not None
    assert "SyntaxError" in saves[0].error
    assert saves[1].error is None
