"""The development loop in a real ipykernel (issue 15): ``%cog serve --token``, ``%cog snippet``,
``%cog serve --reload``, ``%cog history`` and ``%cog predict --again``."""

from __future__ import annotations

import re

import pytest
import requests
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
