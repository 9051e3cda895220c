"""Slots and predictor kinds over HTTP (spec §1, §16): @concurrent, COG_MAX_CONCURRENCY,
deprecated BasePredictor.predict, plain functions, and async setup with loop-bound resources."""

from __future__ import annotations

import requests
from helpers import wait_until
from lifecycle_helpers import WAIT_FOR, Background, health, source

AT_CAPACITY = b'{"error":"At capacity - all prediction slots busy","status":"failed"}'
SYNC_CONCURRENCY = "COG_MAX_CONCURRENCY > 1 requires an async run() or predict() method"

TWO_SLOTS = (
    WAIT_FOR
    + """
import asyncio
import os
from cog import BaseRunner, concurrent, current_scope

class Predictor(BaseRunner):
    @concurrent(max=2)
    async def run(self, name: str) -> str:
        mark(f"@TMP@/running-{name}")
        while not os.path.exists("@TMP@/release"):
            await asyncio.sleep(0.005)
        current_scope().record_metric("name", name)
        return name + ":" + current_scope().context.get("tag", "")
"""
)


def test_concurrent_two_slots(serve_source, tmp_path):
    """@concurrent(max=2): READY with one running, BUSY with two, 409 for a third."""
    with serve_source(source(TWO_SLOTS, tmp_path)) as s:
        first = Background(
            "POST", s.url + "/predictions", json={"input": {"name": "one"}, "context": {"tag": "a"}}
        )
        try:
            wait_until((tmp_path / "running-one").exists, "the first prediction to start")
            assert health(s.url)["status"] == "READY"
            second = Background(
                "POST",
                s.url + "/predictions",
                json={"input": {"name": "two"}, "context": {"tag": "b"}},
            )
            wait_until((tmp_path / "running-two").exists, "the second prediction to start")
            assert health(s.url)["status"] == "BUSY"
            third = requests.post(
                s.url + "/predictions", json={"input": {"name": "three"}}, timeout=10
            )
            assert (third.status_code, third.content) == (409, AT_CAPACITY)
        finally:
            (tmp_path / "release").touch()
        one, two = first.result().json(), second.result().json()
        assert (one["output"], two["output"]) == ("one:a", "two:b")
        assert (one["metrics"]["name"], two["metrics"]["name"]) == ("one", "two")
        assert health(s.url)["status"] == "READY"
        assert not (tmp_path / "running-three").exists()


def test_env_concurrency_with_sync_predictor_fails_setup(serve_source, monkeypatch):
    """COG_MAX_CONCURRENCY=2 with a sync predictor is SETUP_FAILED with coglet's message."""
    monkeypatch.setenv("COG_MAX_CONCURRENCY", "2")
    src = """
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self) -> str:
        return "sync"
"""
    with serve_source(src) as s:
        assert s.health.value == "SETUP_FAILED"
        body = health(s.url)
        post = requests.post(s.url + "/predictions", json={}, timeout=10)
    assert body["status"] == "SETUP_FAILED"
    assert body["setup"]["status"] == "failed"
    assert SYNC_CONCURRENCY in body["setup"]["logs"]
    assert post.status_code == 503


def test_env_concurrency_gives_async_predictor_slots(serve_source, tmp_path, monkeypatch):
    """COG_MAX_CONCURRENCY=2 alone gives an undecorated async predictor two slots."""
    monkeypatch.setenv("COG_MAX_CONCURRENCY", "2")
    src = TWO_SLOTS.replace("    @concurrent(max=2)\n", "")
    with serve_source(source(src, tmp_path)) as s:
        try:
            first = Background("POST", s.url + "/predictions", json={"input": {"name": "one"}})
            wait_until((tmp_path / "running-one").exists, "the first prediction to start")
            assert health(s.url)["status"] == "READY"
            second = Background("POST", s.url + "/predictions", json={"input": {"name": "two"}})
            wait_until((tmp_path / "running-two").exists, "the second prediction to start")
            assert health(s.url)["status"] == "BUSY"
        finally:
            (tmp_path / "release").touch()
        assert [first.result().json()["output"], second.result().json()["output"]] == [
            "one:",
            "two:",
        ]


def test_deprecated_base_predictor_predict(serve_source):
    """A BasePredictor with a sync predict() (the deprecated spelling) serves predictions."""
    src = """
from cog import BasePredictor, Input

class Predictor(BasePredictor):
    def setup(self) -> None:
        self.factor = 3

    def predict(self, x: int = Input(description="a number", ge=0)) -> int:
        print("predicting")
        return x * self.factor
"""
    with serve_source(src) as s:
        body = requests.post(s.url + "/predictions", json={"input": {"x": 4}}, timeout=10).json()
        schema = requests.get(s.url + "/openapi.json", timeout=10).json()
    assert body["status"] == "succeeded"
    assert (body["output"], body["logs"]) == (12, "predicting\n")
    assert schema["components"]["schemas"]["Input"]["properties"]["x"]["minimum"] == 0


def test_plain_function_predictors(serve_source):
    """predict.py:run style plain functions, sync and async, serve predictions."""
    src = """
from cog import Input

def run(text: str = Input(description="words"), times: int = 2) -> str:
    print("sync function")
    return text * times

async def arun(text: str) -> str:
    print("async function")
    return text.upper()
"""
    with serve_source(src, name="run") as s:
        sync = requests.post(
            s.url + "/predictions", json={"input": {"text": "ab"}}, timeout=10
        ).json()
    with serve_source(src, name="arun") as s:
        async_ = requests.post(
            s.url + "/predictions", json={"input": {"text": "ab"}}, timeout=10
        ).json()
    assert (sync["status"], sync["output"], sync["logs"]) == (
        "succeeded",
        "abab",
        "sync function\n",
    )
    assert (async_["status"], async_["output"], async_["logs"]) == (
        "succeeded",
        "AB",
        "async function\n",
    )


LOOP_BOUND = """
import asyncio
from cog import BaseRunner, concurrent

class Predictor(BaseRunner):
    async def setup(self) -> None:
        # All three are bound to the running loop: a predict on any other loop would fail
        # ("attached to a different loop") or hang (the worker task would not be running).
        self.loop = asyncio.get_running_loop()
        self.requests = asyncio.Queue()
        self.worker = asyncio.create_task(self.serve())
        self.ready = self.loop.create_future()
        self.ready.set_result("warm")
        print("setup on the predictor loop")

    async def serve(self) -> None:
        while True:
            text, reply = await self.requests.get()
            reply.set_result(text[::-1])

    @concurrent(max=2)
    async def run(self, text: str) -> str:
        assert asyncio.get_running_loop() is self.loop
        reply = asyncio.get_running_loop().create_future()
        await self.requests.put((text, reply))
        return await self.ready + ":" + await reply
"""


def test_async_setup_resources_work_in_predict(serve_source):
    """Async setup() and async predict() share one loop: a queue and task made in setup work."""
    with serve_source(LOOP_BOUND) as s:
        bodies = [
            requests.post(s.url + "/predictions", json={"input": {"text": t}}, timeout=10).json()
            for t in ("abc", "xyz")
        ]
        setup = health(s.url)["setup"]
    assert [b["output"] for b in bodies] == ["warm:cba", "warm:zyx"]
    assert all(b["status"] == "succeeded" for b in bodies)
    assert setup["logs"] == "setup on the predictor loop\n"
