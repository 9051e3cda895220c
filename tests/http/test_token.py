"""The optional bearer token: every route but ``GET /health-check`` needs it, SSE included, and
it never reaches a log; ``python -m nbcog serve --token`` and ``NBCOG_TOKEN`` turn it on."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cliprocs import write
from helpers import wait_until

from nbcog.http.auth import exposure_warning, is_loopback
from nbcog.testing import RunningServer, parse_sse, serve_in_thread

TOKEN = "tok-3f1a9c"
SOURCE = """
from cog import BaseRunner, Input

class Predictor(BaseRunner):
    def run(self, text: str = Input(default="hi")) -> str:
        print("log line")
        return text + "!"
"""
STREAMING = """
from typing import Iterator
from cog import BaseRunner, streaming

class Predictor(BaseRunner):
    @streaming
    def run(self, n: int = 3) -> Iterator[str]:
        for i in range(n):
            yield str(i)
"""
TRAIN = """
def train(steps: int = 1) -> str:
    return f"trained {steps}"
"""
# (method, path, body): every route of the API (spec §2), unknown paths and methods too.
ROUTES = [
    ("GET", "/", None),
    ("GET", "/openapi.json", None),
    ("POST", "/predictions", {"input": {"text": "a"}}),
    ("PUT", "/predictions/p-token-1", {"input": {"text": "a"}}),
    ("POST", "/predictions/nope/cancel", None),
    ("POST", "/trainings", {"input": {"steps": 2}}),
    ("PUT", "/trainings/t-token-1", {"input": {"steps": 2}}),
    ("POST", "/trainings/nope/cancel", None),
    ("GET", "/no-such-path", None),
    ("DELETE", "/predictions", None),
    ("POST", "/health-check", None),
]


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[RunningServer]:
    """A predictor (with a training handler) served with ``token=TOKEN``."""
    ref = f"{write(tmp_path, 'predict.py', SOURCE)}:Predictor"
    train = f"{write(tmp_path, 'train.py', TRAIN)}:train"
    with serve_in_thread(ref, train=train, token=TOKEN) as running:
        yield running


def call(server: RunningServer, method: str, path: str, body: object, **headers: str) -> int:
    response = requests.request(method, server.url + path, json=body, headers=headers, timeout=30)
    return response.status_code


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_route_refuses_without_or_with_a_wrong_token(guarded, method, path, body):
    """Without a token, with a wrong one or another scheme: 401 with a JSON body."""
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
    ):
        response = requests.request(
            method, guarded.url + path, json=body, headers=headers, timeout=30
        )
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["Content-Type"] == "application/json"
        assert "Authorization: Bearer" in response.json()["detail"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_route_answers_as_without_token_when_the_token_is_right(
    guarded, tmp_path, method, path, body
):
    """With the right token each route answers exactly what an open server answers."""
    with_token = call(guarded, method, path, body, Authorization=f"Bearer {TOKEN}")
    ref = f"{write(tmp_path / 'open', 'predict.py', SOURCE)}:Predictor"
    train = f"{write(tmp_path / 'open', 'train.py', TRAIN)}:train"
    with serve_in_thread(ref, train=train) as open_server:
        assert with_token == call(open_server, method, path, body)
    assert with_token != 401


def test_health_check_is_open(guarded):
    """``GET /health-check`` needs no token (load balancers and Cog's tooling poll it)."""
    response = requests.get(guarded.url + "/health-check", timeout=30)
    assert response.status_code == 200
    assert response.json()["status"] == "READY"


def test_prediction_succeeds_with_the_token(guarded):
    """A sync prediction with the token gets its output."""
    response = requests.post(
        guarded.url + "/predictions",
        json={"input": {"text": "yo"}},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    assert response.status_code == 200
    assert response.json()["output"] == "yo!"


def test_sse_needs_the_token(tmp_path):
    """An SSE request without the token gets a 401 JSON body, with it the event stream."""
    ref = f"{write(tmp_path, 'stream.py', STREAMING)}:Predictor"
    with serve_in_thread(ref, token=TOKEN) as server:
        sse = {"Accept": "text/event-stream"}
        refused = requests.post(
            server.url + "/predictions", json={"input": {}}, headers=sse, timeout=30
        )
        assert refused.status_code == 401
        assert refused.headers["Content-Type"] == "application/json"
        served = requests.post(
            server.url + "/predictions",
            json={"input": {"n": 3}},
            headers={**sse, "Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )
        assert served.status_code == 200
        events = parse_sse(served.content)
        assert [data["chunk"] for name, data in events if name == "output"] == ["0", "1", "2"]


def test_token_never_logged(tmp_path, caplog):
    """Every request logged (right token, wrong token, errors): the token is in no record."""
    caplog.set_level(logging.DEBUG)
    ref = f"{write(tmp_path, 'predict.py', SOURCE)}:Predictor"
    with serve_in_thread(ref, token=TOKEN) as server:
        for token in (TOKEN, "wrong-" + TOKEN):
            for method, path, body in ROUTES:
                call(server, method, path, body, Authorization=f"Bearer {token}")
    assert caplog.records
    assert not [record for record in caplog.records if TOKEN in record.getMessage()]


def test_loopback_hosts_and_the_warning():
    """Loopback interfaces need no token; any other one without a token gets one warning line."""
    assert all(map(is_loopback, ["127.0.0.1", "::1", "[::1]", "localhost", "127.1.2.3"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.0.0.5", "example.org"]))
    assert exposure_warning("127.0.0.1", None) is None
    assert exposure_warning("0.0.0.0", "t") is None
    warning = exposure_warning("0.0.0.0", None)
    assert warning is not None
    assert "\n" not in warning
    assert "--token" in warning


def _predict(url: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"input": {"text": "x"}}
    return requests.post(url + "/predictions", json=body, headers=headers, timeout=30).status_code


def test_cli_generated_token_is_printed_once_and_required(launch, tmp_path):
    """``--token`` without a value: a random token printed once on stderr, then required."""
    write(tmp_path, "predict.py", SOURCE)
    server = launch(["serve", "predict.py:Predictor", "--token"], cwd=tmp_path)
    server.wait_ready()
    found = re.search(r"nbcog: token \(shown once\): (\S+)\n", server.stderr())
    assert found is not None, server.stderr()
    token = found.group(1)
    assert len(token) >= 32
    assert _predict(server.url, None) == 401
    assert _predict(server.url, "wrong") == 401
    assert _predict(server.url, token) == 200
    wait_until(lambda: server.stderr().count("POST /predictions") == 3, "three access lines")
    assert server.stderr().count(token) == 1


def test_cli_token_value_and_env(launch, tmp_path):
    """``--token VALUE`` and ``NBCOG_TOKEN`` set the token; neither is ever printed."""
    write(tmp_path, "predict.py", SOURCE)
    given = launch(["serve", "predict.py:Predictor", "--token", TOKEN], cwd=tmp_path)
    from_env = launch(["serve", "predict.py:Predictor"], cwd=tmp_path, NBCOG_TOKEN=TOKEN)
    for server in (given, from_env):
        server.wait_ready()
        assert _predict(server.url, None) == 401
        assert _predict(server.url, TOKEN) == 200
        wait_until(lambda s=server: s.stderr().count("POST /predictions") == 2, "access lines")
        assert TOKEN not in server.stderr()


def test_cli_warns_on_a_network_host_without_token(launch, tmp_path):
    """``--host 0.0.0.0`` without a token prints one warning line; with a token, none."""
    write(tmp_path, "predict.py", SOURCE)
    banner = re.compile(r"nbcog: serving \S+ at http://0\.0\.0\.0:(\d+)\n")
    bare = launch(
        ["serve", "predict.py:Predictor", "--host", "0.0.0.0"], cwd=tmp_path, banner=banner
    )
    tokened = launch(
        ["serve", "predict.py:Predictor", "--host", "0.0.0.0", "--token", TOKEN],
        cwd=tmp_path,
        banner=banner,
    )
    for server in (bare, tokened):
        assert server.wait_listening()
        wait_until(lambda s=server: _predict(f"http://127.0.0.1:{s.port}", TOKEN) == 200, "ready")
    assert len(re.findall(r"warning: serving on 0\.0\.0\.0 without a token", bare.stderr())) == 1
    assert "warning" not in tokened.stderr()
