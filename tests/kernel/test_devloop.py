"""The development loop in a real ipykernel (issue 15): ``%cog serve --token``, ``%cog snippet``,
``%cog serve --reload``, ``%cog history`` and ``%cog predict --again``."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys

import pytest
import requests
from helpers import wait_until
from kernelkit import ECHO, kernel, wait_ready

pytestmark = pytest.mark.slow
__all__ = ["kernel"]  # the fixture, imported for pytest

HANDLE = "__import__('nbcog').kernel.serving.servers()[-1]"


def post(url: str, token: str | None, text: str = "x") -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(
        url + "/predictions", json={"input": {"text": text}}, headers=headers, timeout=30
    )


def test_serve_token_is_shown_once_required_and_in_every_snippet(kernel):
    """``--token``: a random token shown once, required by HTTP, kept on reload, in curl lines."""
    kernel.ok(ECHO)
    cell = kernel.ok("%cog serve Predictor --port 0 --token")
    found = re.findall(r"nbcog: token \(shown once; handle\.token has it\): (\S+)\n", cell.stdout)
    assert len(found) == 1, cell.stdout
    token = found[0]
    url = kernel.value(f"{HANDLE}.url")
    assert wait_ready(url)["status"] == "READY"
    assert post(url, None).status_code == 401
    assert post(url, "nope").status_code == 401
    assert post(url, token).json()["output"] == "x"
    ready = kernel.wait_for_update("succeeded")
    assert f"-H 'Authorization: Bearer {token}'" in ready
    reloaded = kernel.ok("%cog serve Predictor --port 0 --token")
    assert "token" not in reloaded.stdout
    assert wait_ready(url)["status"] == "READY"
    assert post(url, token).status_code == 200
    kernel.ok(f"_m = {HANDLE}.watch()")
    prediction_id = post(url, token, "w").json()["id"]
    assert token in kernel.value(f"_m.show({prediction_id!r}).curl")
    kernel.ok("_m.close()")
    opened = kernel.ok("%cog serve Predictor --port 0")
    assert "token" not in opened.stdout
    assert wait_ready(url)["status"] == "READY"
    assert post(url, None).status_code == 200


def test_network_host_without_token_warns_once(kernel):
    """``--host 0.0.0.0`` without a token prints one warning line; with ``--token V`` none."""
    kernel.ok(ECHO)
    cell = kernel.ok("%cog serve Predictor --port 0 --host 0.0.0.0")
    assert cell.stdout.count("warning: serving on 0.0.0.0 without a token") == 1
    kernel.ok("%cog stop")
    cell = kernel.ok("%cog serve Predictor --port 0 --host 0.0.0.0 --token s3cr3t-value")
    assert "warning" not in cell.stdout
    assert "s3cr3t-value" not in cell.stdout
    url = kernel.value(f"{HANDLE}.url")
    assert wait_ready(url)["status"] == "READY"
    assert post(url, "s3cr3t-value").status_code == 200


RELOADED = """
from cog import BaseRunner
from helpers import suffix

class Predictor(BaseRunner):
    def run(self, text: str) -> str:
        return "{version} " + text + suffix()
"""


def _save(path, text: str) -> None:
    """Write as editors do: a new file renamed over the old one."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    temporary.replace(path)


def _output(url: str) -> str | None:
    response = post(url, None, "a")
    return response.json()["output"] if response.status_code == 200 else None


def test_reload_on_save_in_the_notebook(kernel, tmp_path):
    """``--reload``: saves of the file and its helper reload; a syntax error keeps the old code."""
    (tmp_path / "helpers.py").write_text("def suffix():\n    return '!'\n")
    predict = tmp_path / "predict.py"
    predict.write_text(RELOADED.format(version="v1"))
    cell = kernel.ok("%cog serve predict.py:Predictor --port 0 --reload")
    assert {"text/plain": "nbcog: starting to watch predict.py"} in cell.displays
    kernel.wait_for_update("nbcog: reloading on save of predict.py (and the local modules")
    url = kernel.value(f"{HANDLE}.url")
    wait_until(lambda: _output(url) == "v1 a!", "v1")
    _save(predict, RELOADED.format(version="v2"))
    wait_until(lambda: _output(url) == "v2 a!", "v2 on the same port")
    _save(tmp_path / "helpers.py", "def suffix():\n    return '?'\n")
    wait_until(lambda: _output(url) == "v2 a?", "the new helper")
    _save(predict, RELOADED.format(version="v3") + "\ndef broken(:\n")
    report = kernel.wait_for_update("not reloaded")
    assert report.startswith("nbcog: predict.py saved at ")
    assert "SyntaxError" in report and "def broken(:" in report
    assert _output(url) == "v2 a?"
    _save(predict, RELOADED.format(version="v4"))
    wait_until(lambda: _output(url) == "v4 a?", "v4 after the fix")
    assert sum("not reloaded" in u.get("text/plain", "") for u in kernel.updates) == 1
    assert kernel.wait_for_update("predict.py saved at").count("\n") >= 1
    kernel.ok("%cog stop")
    names = "[t.name for t in __import__('threading').enumerate() if t.name == 'nbcog-reload']"
    assert kernel.value(names) == []
    kernel.ok("def run(text: str) -> str:\n    return text")
    refused = kernel.run("%cog serve run --port 0 --reload").usage_error
    assert refused == "reload on save watches a file: serve file.py:Name"


SECRETIVE = """
from typing import Optional
from cog import BaseRunner, Input, Path, Secret

class Predictor(BaseRunner):
    def run(
        self,
        text: str,
        times: int = 1,
        key: Secret = Input(default=None),
        doc: Optional[Path] = Input(default=None),
    ) -> str:
        secret = key.get_secret_value() if key is not None else ""
        return f"{text * times}|{len(secret)}|{doc.read_text() if doc else ''}"
"""
SECRET = "sk-live-93af1c"
DOC = "data:text/plain;base64," + base64.b64encode(b"file body").decode()


def _everything_shown(kernel) -> str:
    """Every text the kernel has sent to any cell (streams, displays, display updates)."""
    kernel.assert_quiet()
    parts = [*kernel.orphans, *map(json.dumps, kernel.updates)]
    for cell in kernel._cells.values():
        parts += [cell.stdout, cell.stderr, *map(json.dumps, cell.displays)]
    return "\n".join(parts)


def test_history_again_and_snippets(kernel, tmp_path):
    """History lists predictions without secrets; --again re-runs (files as received, a secret
    asked again, -i overriding); ``%cog snippet`` prints code that gets the same output."""
    kernel.ok(SECRETIVE)
    kernel.ok("%cog serve Predictor --port 0")
    url = kernel.value(f"{HANDLE}.url")
    assert wait_ready(url)["status"] == "READY"
    body = {"input": {"text": "ab", "times": 2, "key": SECRET, "doc": DOC}}
    first = requests.post(url + "/predictions", json=body, timeout=30).json()
    assert first["output"] == f"abab|{len(SECRET)}|file body"
    plain = requests.post(url + "/predictions", json={"input": {"text": "x"}}, timeout=30).json()

    listed = kernel.ok("%cog history").stdout.splitlines()
    assert [line.split()[0] for line in listed] == [plain["id"], first["id"]]
    assert "key='<secret>'" in listed[1]
    assert "doc='data:text/plain;base64,... (" in listed[1]
    assert listed[1].endswith(f"-> 'abab|{len(SECRET)}|file body'")

    refused = kernel.run(f"%cog predict --again {first['id']}").usage_error
    assert refused == (
        f"{first['id']} had the secret input 'key', which is never stored: "
        "give it again (-i key=...)"
    )
    kernel.ok(f"_out = %cog predict --again {first['id']} -i key=k2 -i times=3")
    assert kernel.value("_out") == "ababab|2|file body"
    kernel.ok(f"_out = %cog predict --again {plain['id']} --plain")
    assert kernel.value("_out") == "x|0|"
    assert kernel.run("%cog predict --again pred_nope").usage_error.startswith(
        "no prediction 'pred_nope'"
    )

    for language, run in (("curl", ["bash", "-c"]), ("python", [sys.executable, "-c"])):
        code = kernel.ok(f"%cog snippet {plain['id']} --lang {language}").stdout
        done = subprocess.run([*run, code], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        got = json.loads(done.stdout)["output"] if language == "curl" else done.stdout.strip()
        assert got == "x|0|"
    secret_snippet = kernel.ok(f"%cog snippet {first['id']} --lang python").stdout
    assert "<your secret>" in secret_snippet
    assert DOC in secret_snippet
    cog_line = kernel.ok(f"%cog snippet {first['id']} --lang cog").stdout
    assert cog_line == (
        f"cog predict -i text=ab -i times=2 -i 'key=<your secret>' -i 'doc={DOC}'\n"
    )
    example = kernel.ok("%cog snippet --lang js").stdout
    assert '"text":"..."' in example.replace(" ", "")
    assert SECRET not in _everything_shown(kernel)


def test_env_token_and_the_proxy_url_in_snippets(kernel):
    """``NBCOG_TOKEN`` turns the token on (never printed); under JupyterHub the snippets use
    the public proxy URL, with the token."""
    kernel.ok(ECHO)
    kernel.ok(
        "import os\nos.environ.update(NBCOG_TOKEN='env-tok-1', "
        "JUPYTERHUB_SERVICE_PREFIX='/user/ada/', JUPYTERHUB_PUBLIC_URL='https://hub.example.org')"
    )
    cell = kernel.ok("%cog serve Predictor --port 0")
    assert "env-tok-1" not in cell.stdout
    url = kernel.value(f"{HANDLE}.url")
    port = kernel.value(f"{HANDLE}.port")
    assert wait_ready(url)["status"] == "READY"
    assert post(url, None).status_code == 401
    assert post(url, "env-tok-1").status_code == 200
    snippet = kernel.ok("%cog snippet --lang python").stdout
    assert f"'https://hub.example.org/user/ada/proxy/{port}/predictions'" in snippet
    assert "'Authorization': 'Bearer env-tok-1'" in snippet
