"""``--check``: serve the exported project as its container would, next to nbcog, and compare.

The container is approximated without Docker: a fresh virtualenv holding only ``cog.yaml``'s
``python_packages`` and the ``cog`` SDK (pip's cache may be used), and coglet started from it
in a staged copy of DIR the way Cog's image starts it (``COG_PREDICT_TYPE_STUB``,
``COG_MAX_CONCURRENCY``, and ``.cog/openapi_schema.json`` made from the copy's code, see
``build``). nbcog serves the original predictor (the notebook's object or
the original file) from a loop thread. Both get the same requests: ``GET /openapi.json`` (up to
``info.version``), a prediction with the given inputs (or the schema's defaults), an SSE stream
when the predictor is ``@streaming``, and an invalid input (a 422). Any difference fails.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests
import yaml

from nbcog.export.build import SCHEMA_PATH, SchemaJob, stage
from nbcog.export.compare import REQUEST_TIMEOUT, Answer, Report, Row, compare
from nbcog.testing import serve_in_thread

READY_TIMEOUT = 180.0
_BANNER = re.compile(r"Starting coglet server on 127\.0\.0\.1:(\d+)")


class CheckFailed(Exception):
    """The export does not behave like the original, or could not be served; says why."""


def check(
    directory: Path,
    predictor: object,
    *,
    train: object | None = None,
    inputs: dict[str, Any] | None = None,
    say: Callable[[str], None] = print,
) -> Report:
    """Serve ``directory`` with coglet from a fresh virtualenv and ``predictor`` with nbcog.

    ``say`` gets one line per phase, as it starts. Raises ``CheckFailed`` when the project
    cannot be installed or served; the returned report's ``ok`` says whether answers matched.
    """
    config = _read_config(directory)
    missing = [name for name in config["required"] if name not in (inputs or {})]
    if missing:
        msg = (
            f"the predictor has required inputs without defaults ({', '.join(missing)}): "
            f"give them with -i {missing[0]}=..."
        )
        raise CheckFailed(msg)
    packages = [f"cog=={importlib.metadata.version('cog')}", *config["packages"]]
    report = Report(directory, packages)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nbcog-check-") as scratch:
        project, venv, log = Path(scratch) / "src", Path(scratch) / "venv", Path(scratch) / "log"
        stage(directory, project)
        job = SchemaJob(project, config["predict"], config["train"])
        try:
            say(f"nbcog: installing {', '.join(packages)} into a fresh virtualenv")
            _make_venv(venv, packages)
            report.rows.append(_schema_row(project, job))
        finally:
            job.stop()
        report.timings["venv and pip"] = time.monotonic() - started
        phase = time.monotonic()
        say("nbcog: starting coglet (from the virtualenv) and nbcog (the original)")
        with (
            _quiet_access_log(),
            _coglet(venv, project, config, log) as coglet_url,
            serve_in_thread(predictor, train=train, ready_timeout=READY_TIMEOUT) as ours,
        ):
            if ours.health.value != "READY":
                health = ours.health.value
                msg = f"nbcog could not set up the original ({health}): {_logs(ours.url)}"
                raise CheckFailed(msg)
            report.coglet_version = _wait_ready(coglet_url, log)
            report.timings["servers ready"] = time.monotonic() - phase
            phase = time.monotonic()
            report.rows += compare(ours.url, coglet_url, inputs)
            report.timings["requests"] = time.monotonic() - phase
    return report


def _schema_row(project: Path, job: SchemaJob) -> Row:
    """The exported schema file against the one made from the project's code, as cog build
    would; coglet is given the latter."""
    built, printed = job.result()
    if built is None:
        msg = f"cannot make the schema from the project's code, as cog build would: {printed}"
        raise CheckFailed(msg)
    path = project / SCHEMA_PATH
    exported = json.loads(path.read_text())
    path.unlink()  # a new file: never through a link into DIR
    path.write_text(built)
    return Row(
        "schema: exported vs code",
        Answer("exported file", exported),
        Answer("made from DIR's code", json.loads(built)),
    )


@contextlib.contextmanager
def _quiet_access_log() -> Iterator[None]:
    """The check's own 422 is expected: keep tornado's access warning for it off the screen."""
    access = logging.getLogger("tornado.access")
    level = access.level
    access.setLevel(logging.ERROR)
    try:
        yield
    finally:
        access.setLevel(level)


def _read_config(directory: Path) -> dict[str, Any]:
    path = directory / "cog.yaml"
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        msg = f"cannot read {path}: {exc}"
        raise CheckFailed(msg) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("predict"), str):
        msg = f"{path} has no predict: entry"
        raise CheckFailed(msg)
    build = raw.get("build") or {}
    version = str(build.get("python_version", ""))
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if version and version != here:
        msg = f"{path} asks for Python {version}; this check can only use {here} (this Python)"
        raise CheckFailed(msg)
    try:
        schema = json.loads((directory / ".cog" / "openapi_schema.json").read_text())
        required = schema["components"]["schemas"]["Input"].get("required", [])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = f"{directory}/.cog/openapi_schema.json is missing or broken ({exc}): export again"
        raise CheckFailed(msg) from None
    concurrency = (raw.get("concurrency") or {}).get("max")
    return {
        "packages": [str(p) for p in build.get("python_packages") or []],
        "predict": raw["predict"],
        "train": raw["train"] if isinstance(raw.get("train"), str) else None,
        "concurrency": int(concurrency) if concurrency else None,
        "required": [str(name) for name in required],
    }


def _clean_env() -> dict[str, str]:
    """This environment without what would leak the kernel's packages or Cog settings in."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("COG_")}


def _make_venv(venv: Path, packages: list[str]) -> None:
    env = _clean_env()
    subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, env=env
    )
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]
    done = subprocess.run(  # noqa: S603 - pip with the packages cog.yaml lists
        # --no-compile: a throwaway environment need not byte-compile every module (~2 s).
        [*pip, "install", "--disable-pip-version-check", "--no-compile", "-q", *packages],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        noise = ("WARNING: Location", "[notice]")
        lines = [line for line in done.stderr.splitlines() if not line.startswith(noise)]
        tail = "\n  ".join(_clip(line) for line in lines[-12:])
        msg = f"pip could not install cog.yaml's packages ({' '.join(packages)}):\n  {tail}"
        raise CheckFailed(msg)


@contextlib.contextmanager
def _coglet(venv: Path, directory: Path, config: dict[str, Any], log: Path) -> Iterator[str]:
    """coglet serving ``directory`` from ``venv`` on a free port; yields its URL once bound."""
    env = _clean_env()
    env.update(
        PATH=os.pathsep.join([str(venv / "bin"), env.get("PATH", "")]),
        VIRTUAL_ENV=str(venv),
        PORT="0",
        COG_PREDICT_TYPE_STUB=config["predict"],
        PYTHONDONTWRITEBYTECODE="1",  # the staged copy stays as it was made
    )
    if config["concurrency"]:
        env["COG_MAX_CONCURRENCY"] = str(config["concurrency"])
    with log.open("wb") as sink:
        process = subprocess.Popen(  # noqa: S603 - coglet from the venv, fixed arguments
            [str(venv / "bin" / "python"), "-m", "cog.server.http", "--host", "127.0.0.1"],
            cwd=directory,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not (bound := _BANNER.search(log.read_text(errors="replace"))):
            if process.poll() is not None or time.monotonic() > deadline:
                msg = f"coglet did not start: {_tail(log)}"
                raise CheckFailed(msg)
            time.sleep(0.05)
        yield f"http://127.0.0.1:{bound[1]}"
    finally:  # coglet and its worker: the process group this function started
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, sig)


def _clip(line: str, width: int = 240) -> str:
    """One line of pip's or coglet's output, cut (pip lists every version it found)."""
    return line if len(line) <= width else line[: width - 3] + "..."


def _tail(log: Path) -> str:
    return "\n  ".join(_clip(line) for line in log.read_text(errors="replace").splitlines()[-12:])


def _logs(url: str) -> str:
    """The setup logs a server's health-check reports (the error is their last line)."""
    body = requests.get(url + "/health-check", timeout=REQUEST_TIMEOUT).json()
    logs = str((body.get("setup") or {}).get("logs", "")).strip().splitlines()
    return "\n  ".join(_clip(line) for line in logs[-8:])


def _wait_ready(url: str, log: Path) -> str:
    """Poll coglet's health-check until READY; returns coglet's version."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            body = requests.get(url + "/health-check", timeout=REQUEST_TIMEOUT).json()
        except requests.ConnectionError:
            body = {"status": "STARTING"}
        if body.get("status") == "READY":
            return str(body.get("version", {}).get("coglet", ""))
        if body.get("status") == "SETUP_FAILED" or time.monotonic() > deadline:
            logs = str((body.get("setup") or {}).get("logs", "")).strip().splitlines()
            shown = "\n  ".join(_clip(line) for line in logs[-8:]) or _tail(log)
            msg = f"coglet's setup did not succeed ({body.get('status')}):\n  {shown}"
            raise CheckFailed(msg)
        time.sleep(0.05)
