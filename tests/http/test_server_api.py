"""The Python API: ``nbcog.Server`` serving live objects (a class, an instance, a function)
defined right here, on the caller's asyncio loop, as in a notebook."""

from __future__ import annotations

import asyncio
import errno
import socket
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import requests
from cog import BaseRunner, Input
from webhook_receiver import Receiver

import nbcog

WAIT = 30.0

SETUP_GATE = threading.Event()


class Echo(BaseRunner):
    """A class predictor: setup state, logs, validation."""

    def setup(self) -> None:
        self.prefix = ">"

    def run(self, text: str = Input(description="what to echo"), fail: str = "") -> str:
        print("echo", text)
        if fail == "value":
            raise ValueError("boom")
        if fail == "exit":
            sys.exit(3)
        return self.prefix + text


class GatedSetup(BaseRunner):
    """setup() blocks until the test opens ``SETUP_GATE`` (bounded)."""

    def setup(self) -> None:
        if not SETUP_GATE.wait(WAIT):
            raise TimeoutError("SETUP_GATE never opened")

    def run(self) -> str:
        return "ready"


class Counter(BaseRunner):
    """An instance keeps the state the user gave it before serving."""

    def __init__(self, start: int) -> None:
        self.count = start

    def run(self, step: int = 1) -> int:
        self.count += step
        return self.count


def double(x: int) -> int:
    """A plain function predictor."""
    return 2 * x


async def shout(text: str) -> str:
    """An async function predictor."""
    await asyncio.sleep(0)
    return text.upper()


def run(body: Callable[[], Awaitable[None]]) -> None:
    """Run an async test body on a fresh loop (what a notebook kernel's loop stands in for)."""
    asyncio.run(asyncio.wait_for(body(), 2 * WAIT))


async def http(method: str, url: str, **kwargs: Any) -> requests.Response:
    """A blocking request made from a thread, so the serving loop keeps running."""
    return await asyncio.to_thread(requests.request, method, url, timeout=WAIT, **kwargs)


def nbcog_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("nbcog")}


@pytest.mark.parametrize(
    ("predictor", "payload", "output"),
    [
        (Echo, {"text": "a"}, ">a"),
        (Counter(40), {"step": 2}, 42),
        (double, {"x": 21}, 42),
        (shout, {"text": "hey"}, "HEY"),
    ],
    ids=["class", "instance", "function", "async-function"],
)
def test_serves_live_objects(predictor, payload, output):
    """A class, an instance, a function and an async function defined in this module are served."""

    async def body() -> None:
        server = nbcog.Server(predictor, port=0)
        server.start()
        try:
            assert await server.wait_until_ready(WAIT) == "READY"
            r = await http("POST", server.url + "/predictions", json={"input": payload})
        finally:
            server.stop()
        assert r.status_code == 200
        assert r.json()["status"] == "succeeded"
        assert r.json()["output"] == output

    run(body)


def test_start_does_not_block_the_loop():
    """start() returns while setup() still runs; the loop serves STARTING, then READY."""
    SETUP_GATE.clear()

    async def body() -> None:
        server = nbcog.Server(GatedSetup, port=0)
        server.start()
        try:
            assert server.running
            health = (await http("GET", server.url + "/health-check")).json()
            assert health["status"] == "STARTING"
            assert (await http("POST", server.url + "/predictions", json={})).status_code == 503
            SETUP_GATE.set()
            assert await server.wait_until_ready(WAIT) == "READY"
            r = await http("POST", server.url + "/predictions", json={})
            assert r.json()["output"] == "ready"
        finally:
            SETUP_GATE.set()
            server.stop()

    run(body)


def test_port_zero_gives_a_real_port():
    """With port=0, port and url name the port actually bound, which answers HTTP."""

    async def body() -> None:
        server = nbcog.Server(double, port=0)
        assert server.port == 0
        server.start()
        try:
            assert server.port > 0
            assert server.url == f"http://127.0.0.1:{server.port}"
            r = await http("GET", server.url + "/")
            assert r.json()["predictions_url"] == "/predictions"
        finally:
            server.stop()

    run(body)


def test_stop_is_idempotent_and_frees_the_port():
    """stop() twice is fine; the port can be bound again, by a socket and by a new Server."""

    async def body() -> None:
        nbcog.Server(double).stop()  # never started: a no-op
        server = nbcog.Server(double, port=0)
        server.start()
        await server.wait_until_ready(WAIT)
        assert (await http("POST", server.url + "/predictions", json={"input": {"x": 1}})).ok
        port = server.port
        server.stop()
        server.stop()
        assert not server.running
        with pytest.raises(requests.ConnectionError):
            await http("GET", server.url + "/")
        with socket.socket() as again:
            again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do
            again.bind(("127.0.0.1", port))
            again.listen()
        second = nbcog.Server(double, port=port)
        second.start()
        try:
            await second.wait_until_ready(WAIT)
            r = await http("POST", second.url + "/predictions", json={"input": {"x": 4}})
            assert r.json()["output"] == 8
        finally:
            second.stop()
            second.stop()

    run(body)


def test_a_stopped_server_starts_again_and_its_webhooks_still_go_out():
    """start() after stop() serves again, with a webhook sender of its own (the old one closed)."""
    receiver = Receiver()

    async def body() -> None:
        server = nbcog.Server(double, port=0)
        for x in (1, 2):
            server.start()
            await server.wait_until_ready(WAIT)
            payload = {"input": {"x": x}, "webhook": receiver.url}
            r = await http("POST", server.url + "/predictions", json=payload)
            assert r.json()["output"] == 2 * x
            server.stop()
            await server.wait_closed()  # queued webhooks have drained

    try:
        run(body)
        completed = [b for b in receiver.bodies() if b["status"] == "succeeded"]
    finally:
        receiver.close()
    assert [b["output"] for b in completed] == [2, 4]


def test_start_twice_is_refused():
    """A running server's start() raises instead of binding a second socket."""

    async def body() -> None:
        server = nbcog.Server(double, port=0)
        server.start()
        try:
            with pytest.raises(RuntimeError, match=f"server already running at {server.url}"):
                server.start()
        finally:
            server.stop()

    run(body)


def test_port_in_use_raises_and_leaves_nothing_running():
    """start() on a taken port raises PortInUse naming the port; no server or thread is left."""

    async def body() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            before = nbcog_threads()
            server = nbcog.Server(Echo, port=port)
            with pytest.raises(nbcog.PortInUse) as caught:
                server.start()
            assert isinstance(caught.value, OSError)
            assert caught.value.errno == errno.EADDRINUSE
            assert f"port {port} on 127.0.0.1 is already in use" in str(caught.value)
            assert not server.running
            assert server.service is None
            assert nbcog_threads() == before
            server.stop()  # still a harmless no-op

    run(body)


@pytest.mark.parametrize(
    ("fail", "error"),
    [
        ("value", "Prediction failed: Prediction failed: ValueError: boom"),
        ("exit", "Prediction failed: Prediction failed: SystemExit: 3"),
    ],
)
def test_server_stays_up_after_a_predictor_raises(fail, error):
    """A raising predict() (SystemExit included) fails that prediction only; the server goes on."""

    async def body() -> None:
        server = nbcog.Server(Echo, port=0)
        server.start()
        try:
            await server.wait_until_ready(WAIT)
            failed = await http(
                "POST", server.url + "/predictions", json={"input": {"text": "x", "fail": fail}}
            )
            assert failed.status_code == 200
            assert (failed.json()["status"], failed.json()["error"]) == ("failed", error)
            assert failed.json()["logs"] == "echo x\n"
            health = (await http("GET", server.url + "/health-check")).json()
            assert health["status"] == "READY"
            ok = await http("POST", server.url + "/predictions", json={"input": {"text": "y"}})
            assert ok.json()["output"] == ">y"
            assert server.running
        finally:
            server.stop()

    run(body)
