"""What ``python -m nbcog serve`` prints to its terminal (real subprocesses, free ports):
setup output, a setup failure with its traceback, each prediction's prints and end, and one
access line per request, as ``cog serve``'s container shows them."""

from __future__ import annotations

import re
import subprocess
import sys

import requests
from cliprocs import WAIT, Process, child_env, run_cli, write
from helpers import wait_until

TALKATIVE = """
import logging
import sys
from cog import BaseRunner

class Predictor(BaseRunner):
    def setup(self) -> None:
        print("weights loaded")
        logging.getLogger("model").warning("cache is cold")

    def run(self, text: str) -> str:
        print("predicting", text)
        print("half way", file=sys.stderr)
        if text == "bad":
            raise ValueError(f"{text!r} is not supported")
        return text.upper()
"""

BROKEN = """
from cog import BaseRunner

class Predictor(BaseRunner):
    def setup(self) -> None:
        print("loading weights")
        raise RuntimeError("no weights at /models/w.bin")

    def run(self) -> str:
        return ""
"""


def access_line(status: int, method: str, path: str) -> re.Pattern[str]:
    """tornado's access record: status, method, path, client, time."""
    return re.compile(
        rf"tornado\.access {status} {method} {re.escape(path)} \(127\.0\.0\.1\) \d+\.\d\dms\n"
    )


def test_serve_prints_setup_prediction_output_and_access_lines(launch, tmp_path):
    """setup's and predict()'s prints and logs, each end, and an access line per request show."""
    write(tmp_path, "predict.py", TALKATIVE)
    server = launch(["serve", "predict.py:Predictor"], cwd=tmp_path)
    server.wait_ready()
    good = requests.post(server.url + "/predictions", json={"input": {"text": "hi"}}, timeout=WAIT)
    bad = requests.post(server.url + "/predictions", json={"input": {"text": "bad"}}, timeout=WAIT)
    assert requests.get(server.url + "/nope", timeout=WAIT).status_code == 404
    assert requests.post(server.url + "/shutdown", timeout=WAIT).status_code == 200
    assert server.wait_exit() == 0
    ok, failed = good.json()["id"], bad.json()["id"]
    assert bad.json()["error"] == (
        "Prediction failed: Prediction failed: ValueError: 'bad' is not supported"
    )
    stdout, stderr = server.stdout(), server.stderr()
    assert stdout == (f"setup: weights loaded\n{ok}: predicting hi\n{failed}: predicting bad\n")
    assert "setup: cache is cold\n" in stderr
    assert stderr.index("setup: cache is cold") < stderr.index("nbcog: setup succeeded in ")
    assert f"{ok}: half way\n" in stderr
    assert re.search(rf"nbcog: {ok} succeeded in \d+\.\d\d s\n", stderr)
    ending = re.search(rf"nbcog: {failed} failed after \d+\.\d\d s:\n((?:  .*\n)+)", stderr)
    assert ending is not None, stderr
    trace = ending.group(1).splitlines()
    assert trace[0] == "  Traceback (most recent call last):"
    assert trace[1] == f'    File "{tmp_path / "predict.py"}", line 15, in run'
    assert trace[-1] == "  ValueError: 'bad' is not supported"
    assert "nbcog/runner" not in stderr  # the traceback starts in the user's code
    for status, method, path in [
        (200, "GET", "/health-check"),
        (200, "POST", "/predictions"),
        (404, "GET", "/nope"),
        (200, "POST", "/shutdown"),
    ]:
        assert access_line(status, method, path).search(stderr), (status, path, stderr)
    assert len(access_line(200, "POST", "/predictions").findall(stderr)) == 2


def test_failing_setup_prints_its_traceback_at_once_and_stays_up(launch, tmp_path):
    """When /health-check says SETUP_FAILED the traceback is already in the terminal; HTTP stays."""
    write(tmp_path, "predict.py", BROKEN)
    server = launch(["serve", "predict.py:Predictor"], cwd=tmp_path)
    assert server.wait_listening(), server.stderr()
    wait_until(lambda: server.health() == "SETUP_FAILED", "SETUP_FAILED")
    stderr = server.stderr()  # not polled: printed before the health changed
    assert server.stdout() == "setup: loading weights\n"
    assert (
        "setup: Traceback (most recent call last):\n"
        f'setup:   File "{tmp_path / "predict.py"}", line 7, in setup\n'
        'setup:     raise RuntimeError("no weights at /models/w.bin")\n'
        "setup: RuntimeError: no weights at /models/w.bin\n"
        "nbcog: setup failed after "
    ) in stderr
    assert "(the server stays up; GET /health-check has the setup logs)\n" in stderr
    refused = requests.post(server.url + "/predictions", json={}, timeout=WAIT)
    assert refused.status_code == 503
    health = requests.get(server.url + "/health-check", timeout=WAIT).json()
    assert health["setup"]["logs"].endswith("RuntimeError: no weights at /models/w.bin\n")
    assert requests.post(server.url + "/shutdown", timeout=WAIT).status_code == 200
    assert server.wait_exit() == 0


def test_quiet_flags(launch, tmp_path):
    """--no-access-log drops request lines; -q also the predictor's output, never failures."""
    write(tmp_path, "predict.py", TALKATIVE)
    printed = {}
    for flag in ("--no-access-log", "-q"):
        server = launch(["serve", "predict.py:Predictor", flag], cwd=tmp_path)
        server.wait_ready()
        for text in ("hi", "bad"):
            requests.post(server.url + "/predictions", json={"input": {"text": text}}, timeout=WAIT)
        assert requests.get(server.url + "/nope", timeout=WAIT).status_code == 404
        assert requests.post(server.url + "/shutdown", timeout=WAIT).status_code == 200
        assert server.wait_exit() == 0
        printed[flag] = (server.stdout(), server.stderr())
    stdout, stderr = printed["--no-access-log"]
    assert "tornado.access" not in stderr
    assert "setup: weights loaded\n" in stdout
    assert ": predicting hi\n" in stdout
    stdout, stderr = printed["-q"]
    assert stdout == ""
    assert "tornado.access" not in stderr
    assert "setup: " not in stderr
    assert "succeeded in" not in stderr.replace("nbcog: setup succeeded in", "")
    assert re.search(r"failed after \d+\.\d\d s:\n  Traceback", stderr)
    assert "  ValueError: 'bad' is not supported\n" in stderr


def test_bad_input_default_is_a_load_error_naming_the_input(launch, tmp_path):
    """Input(default="three") on an int: schema exits 1 and serve fails setup, both naming it."""
    write(
        tmp_path,
        "predict.py",
        """
        from cog import BaseRunner, Input

        class Predictor(BaseRunner):
            def run(self, count: int = Input(default="three")) -> str:
                return str(count)
        """,
    )
    message = 'ValueError: invalid default for input count: "three" is not of type "integer"'
    printed = run_cli(["schema", "predict.py:Predictor"], cwd=tmp_path)
    assert (printed.returncode, printed.stdout) == (1, "")
    assert printed.stderr == f"nbcog: cannot load predict.py:Predictor: {message}\n"
    # No access lines: the health polls' lines may fall between the traceback and the verdict.
    server = launch(["serve", "predict.py:Predictor", "--no-access-log"], cwd=tmp_path)
    assert server.wait_listening(), server.stderr()
    wait_until(lambda: server.health() == "SETUP_FAILED", "SETUP_FAILED")
    assert f"setup: {message}\nnbcog: setup failed after " in server.stderr()
    health = requests.get(server.url + "/health-check", timeout=WAIT).json()
    assert health["setup"]["logs"] == message + "\n"


def test_closed_terminal_does_not_break_predictions(tmp_path):
    """With its stdout pipe closed (`serve ... | head -1`), the server still answers predictions."""
    write(tmp_path, "predict.py", TALKATIVE)
    log = tmp_path / "stderr.txt"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nbcog", "serve", "predict.py:Predictor", "--port", "0"],
            cwd=tmp_path,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=err,
        )
    try:
        assert proc.stdout is not None
        proc.stdout.close()
        server = Process(proc, log, tmp_path / "unused")
        server.wait_ready()
        for text in ("a", "b"):
            body = requests.post(
                server.url + "/predictions", json={"input": {"text": text}}, timeout=WAIT
            ).json()
            assert (body["status"], body["output"], body["logs"]) == (
                "succeeded",
                text.upper(),
                f"predicting {text}\nhalf way\n",
            )
        assert f"{body['id']}: half way\n" in server.stderr()  # stderr still works
    finally:
        proc.kill()
        proc.wait(10)
