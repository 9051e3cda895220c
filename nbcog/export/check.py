"""``--check``: serve the exported project as its container would, next to nbcog, and compare.

The container is approximated without Docker: a fresh virtualenv holding only ``cog.yaml``'s
``python_packages`` and the ``cog`` SDK (pip's cache may be used), and coglet started from it
in DIR the way Cog's image starts it (``COG_PREDICT_TYPE_STUB``, ``COG_MAX_CONCURRENCY``,
``.cog/openapi_schema.json``). nbcog serves the original predictor (the notebook's object or
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from nbcog.testing import serve_in_thread

READY_TIMEOUT = 180.0
REQUEST_TIMEOUT = 120.0
_BANNER = re.compile(r"Starting coglet server on 127\.0\.0\.1:(\d+)")


class CheckFailed(Exception):
    """The export does not behave like the original, or could not be served; says why."""


@dataclass
class Answer:
    """One server's answer to one request, reduced to what must be equal."""

    summary: str
    body: Any


@dataclass
class Row:
    """One compared request."""

    request: str
    nbcog: Answer
    coglet: Answer

    @property
    def same(self) -> bool:
        return bool(self.nbcog.body == self.coglet.body)


@dataclass
class Report:
    """The rows, the time each phase took, and the table to print."""

    directory: Path
    packages: list[str]
    rows: list[Row] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    coglet_version: str = ""

    @property
    def ok(self) -> bool:
        return all(row.same for row in self.rows)

    def table(self) -> str:
        """The comparison table, the differences under it, and how long it took."""
        width = max(len(row.request) for row in self.rows)
        short = [(r, r.nbcog.summary[:26], r.coglet.summary[:26]) for r in self.rows]
        lines = [
            f"nbcog --check: {self.directory} served by coglet {self.coglet_version} from a fresh"
            f" virtualenv ({', '.join(self.packages)}), next to nbcog serving the original",
            f"  {'request':<{width}}  {'nbcog':<26}  {'coglet':<26}  same",
        ]
        for row, ours, theirs in short:
            lines.append(
                f"  {row.request:<{width}}  {ours:<26}  {theirs:<26}  {'yes' if row.same else 'NO'}"
            )
        for row in self.rows:
            if not row.same:
                lines.append(f"{row.request} differs:")
                lines += [f"  {line}" for line in differences(row.nbcog.body, row.coglet.body)]
        total = sum(self.timings.values())
        phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.timings.items())
        verdict = "same answers" if self.ok else "DIFFERENT answers"
        lines.append(f"{verdict}; checked in {total:.1f} s ({phases})")
        return "\n".join(lines)


def differences(ours: Any, theirs: Any, path: str = "", limit: int = 8) -> list[str]:
    """Where two JSON values differ, one line per differing leaf (at most ``limit``)."""
    found: list[str] = []

    def walk(a: Any, b: Any, where: str) -> None:
        if len(found) >= limit or a == b:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                walk(a.get(key, "<missing>"), b.get(key, "<missing>"), f"{where}.{key}")
            return
        if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(x, y, f"{where}[{i}]")
            return
        found.append(f"{where.lstrip('.') or 'body'}: nbcog {_short(a)} | coglet {_short(b)}")

    walk(ours, theirs, path)
    return found


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) or value != "<missing>" else value
    return text if len(text) <= 60 else text[:57] + "..."


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
        venv = Path(scratch) / "venv"
        say(f"nbcog: installing {', '.join(packages)} into a fresh virtualenv")
        _make_venv(venv, packages)
        report.timings["venv and pip"] = time.monotonic() - started
        phase = time.monotonic()
        say("nbcog: starting coglet (from the virtualenv) and nbcog (the original)")
        with (
            _quiet_access_log(),
            _coglet(venv, directory, config, Path(scratch) / "coglet.log") as coglet_url,
            serve_in_thread(predictor, train=train, ready_timeout=READY_TIMEOUT) as ours,
        ):
            if ours.health.value != "READY":
                msg = (
                    f"nbcog could not set up the original ({ours.health.value}): {_logs(ours.url)}"
                )
                raise CheckFailed(msg)
            report.coglet_version = _wait_ready(coglet_url, Path(scratch) / "coglet.log")
            report.timings["servers ready"] = time.monotonic() - phase
            phase = time.monotonic()
            report.rows = _compare(ours.url, coglet_url, inputs)
            report.timings["requests"] = time.monotonic() - phase
    return report


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
        PYTHONDONTWRITEBYTECODE="1",  # nothing written into DIR
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


def _compare(ours: str, theirs: str, inputs: dict[str, Any] | None) -> list[Row]:
    urls = {"nbcog": ours, "coglet": theirs}
    documents = {name: _get_json(url + "/openapi.json") for name, url in urls.items()}
    rows = [_row("GET /openapi.json", documents, _openapi_answer)]
    document = documents["nbcog"][1]
    payload = {"input": inputs if inputs is not None else {}}
    label = "POST /predictions (-i inputs)" if inputs else "POST /predictions (defaults)"
    answers = {n: _post(u, {"id": "nbcog-check-json", **payload}) for n, u in urls.items()}
    rows.append(_row(label, answers, _prediction_answer))
    if document.get("paths", {}).get("/predictions", {}).get("post", {}).get("x-cog-streaming"):
        sse = {"id": "nbcog-check-sse", **payload}
        streams = {n: _post(u, sse, stream=True) for n, u in urls.items()}
        rows.append(_row("POST /predictions (SSE)", streams, _stream_answer))
    invalid = {"id": "nbcog-check-422", "input": invalid_input(document)}
    rejected = {n: _post(u, invalid) for n, u in urls.items()}
    rows.append(_row("POST /predictions (invalid)", rejected, _plain_answer))
    return rows


def _get_json(url: str) -> tuple[int, Any]:
    response = requests.get(url, timeout=REQUEST_TIMEOUT)
    return response.status_code, _json_or_text(response)


def _post(url: str, body: dict[str, Any], *, stream: bool = False) -> tuple[int, Any]:
    """POST a prediction; coglet's spurious 409 right after a sync answer is retried."""
    headers = {"Accept": "text/event-stream"} if stream else {}
    deadline = time.monotonic() + REQUEST_TIMEOUT
    while True:
        response = requests.post(
            url + "/predictions", json=body, headers=headers, timeout=REQUEST_TIMEOUT
        )
        if response.status_code != 409 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    if stream and response.headers.get("Content-Type", "").startswith("text/event-stream"):
        return response.status_code, sse_events(response.text)
    return response.status_code, _json_or_text(response)


def _json_or_text(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def sse_events(text: str) -> list[dict[str, Any]]:
    """``{event, data}`` of each event of a whole SSE body (comments and ``id:`` left out)."""
    events: list[dict[str, Any]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                data.append(line.partition(":")[2].removeprefix(" "))
        if data:
            events.append({"event": name, "data": _without_timing(json.loads("\n".join(data)))})
    return events


def _without_timing(body: Any) -> Any:
    """A prediction body without ``metrics.predict_time``, the one field that differs by nature."""
    if isinstance(body, dict) and isinstance(body.get("metrics"), dict):
        metrics = {k: v for k, v in body["metrics"].items() if k != "predict_time"}
        return {**body, "metrics": metrics}
    return body


def _row(request: str, answers: dict[str, tuple[int, Any]], reduce: Callable[..., Answer]) -> Row:
    return Row(request, reduce(*answers["nbcog"]), reduce(*answers["coglet"]))


def _openapi_answer(status: int, body: Any) -> Answer:
    if isinstance(body, dict) and isinstance(body.get("info"), dict):
        body = {**body, "info": {k: v for k, v in body["info"].items() if k != "version"}}
    return Answer(str(status), {"status": status, "document": body})


def _prediction_answer(status: int, body: Any) -> Answer:
    state = body.get("status", "") if isinstance(body, dict) else ""
    return Answer(f"{status} {state}".strip(), {"status": status, "body": _without_timing(body)})


def _stream_answer(status: int, body: Any) -> Answer:
    if isinstance(body, list):
        last = body[-1]["data"] if body else {}
        state = last.get("status", "") if isinstance(last, dict) else ""
        return Answer(f"{status}, {len(body)} events, {state}", {"status": status, "events": body})
    return Answer(f"{status} (not SSE)", {"status": status, "body": body})


def _plain_answer(status: int, body: Any) -> Answer:
    return Answer(str(status), {"status": status, "body": body})


def invalid_input(document: dict[str, Any]) -> Any:
    """An input every server must reject with a 422: a wrongly typed value for a typed field."""
    schemas = document.get("components", {}).get("schemas", {})
    properties = schemas.get("Input", {}).get("properties", {})
    wrong = {"string": 12345, "integer": "not a number", "number": "not a number"}
    for name, schema in properties.items():
        if schema.get("type") in wrong and not schema.get("nullable"):
            return {name: wrong[schema["type"]]}
    return ["not", "an", "object"]
