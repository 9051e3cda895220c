"""Trainings over HTTP (spec §18): ``/trainings`` runs ``train()``, ``/predictions`` runs
``predict()``, with the training schema, ids, cancel and the SSE refusal of coglet."""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import wait_until

from nbcog.testing import RunningServer, serve_in_thread

WAIT = 30.0

PREDICT = """
from typing import Iterator
from cog import BaseRunner, streaming

class Predictor(BaseRunner):
    @streaming
    def run(self, text: str = "x") -> Iterator[str]:
        print("predicting", text)
        yield "pred:" + text
"""

TRAIN = """
import time
from cog import Input

def train(steps: int = Input(default=1, ge=1), fail: bool = False, hold: bool = False) -> str:
    print("training", steps)
    if fail:
        raise ValueError("bad steps")
    deadline = time.monotonic() + 60
    while hold and time.monotonic() < deadline:  # until canceled (bounded)
        time.sleep(0.01)
    return f"trained {steps}"
"""

ASYNC_TRAIN = """
async def train(steps: int = 1) -> str:
    raise RuntimeError(f"no {steps}")
"""

BOTH = """
from cog import BaseRunner

class Model(BaseRunner):
    def run(self, text: str = "x") -> str:
        return "run:" + text

    def train(self, steps: int = 1) -> str:
        return f"train:{steps}"
"""

STREAMING_ONLY = "Training endpoints do not support streaming responses."

Serve = Callable[..., AbstractContextManager[RunningServer]]


@pytest.fixture
def serve_pair(tmp_path: Path) -> Serve:
    """Serve ``predict.py:Predictor`` with ``train.py:train`` (both written from source)."""

    @contextmanager
    def _serve(predict: str = PREDICT, train: str | None = TRAIN) -> Iterator[RunningServer]:
        (tmp_path / "predict.py").write_text(textwrap.dedent(predict))
        train_ref = None
        if train is not None:
            (tmp_path / "train.py").write_text(textwrap.dedent(train))
            train_ref = f"{tmp_path / 'train.py'}:train"
        with serve_in_thread(f"{tmp_path / 'predict.py'}:Predictor", train=train_ref) as running:
            assert running.health.value == "READY"
            yield running

    return _serve


def create(
    url: str, path: str, body: Any, method: str = "POST", **headers: str
) -> requests.Response:
    return requests.request(method, url + path, json=body, headers=headers, timeout=WAIT)


def test_root_advertises_trainings(serve_pair):
    """With a train handler GET / adds the three trainings_* keys."""
    import cog

    with serve_pair() as s:
        r = requests.get(s.url + "/", timeout=WAIT)
    assert (
        r.content
        == json.dumps(
            {
                "cog_version": cog.__version__,
                "docs_url": "/docs",
                "healthcheck_url": "/health-check",
                "openapi_url": "/openapi.json",
                "predictions_cancel_url": "/predictions/{prediction_id}/cancel",
                "predictions_idempotent_url": "/predictions/{prediction_id}",
                "predictions_url": "/predictions",
                "shutdown_url": "/shutdown",
                "trainings_cancel_url": "/trainings/{training_id}/cancel",
                "trainings_idempotent_url": "/trainings/{training_id}",
                "trainings_url": "/trainings",
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
    )


def test_openapi_has_training_paths_and_schemas(serve_pair):
    """The document gains /trainings, its cancel path and the Training* schemas (spec §5)."""
    with serve_pair() as s:
        doc = requests.get(s.url + "/openapi.json", timeout=WAIT).json()
    train = doc["paths"]["/trainings"]["post"]
    assert (train["summary"], train["description"], train["operationId"]) == (
        "Train",
        "Run a single training on the model",
        "train_trainings_post",
    )
    assert "x-cog-streaming" not in train
    assert doc["paths"]["/predictions"]["post"]["x-cog-streaming"] is True
    assert train["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TrainingRequest"
    }
    cancel = doc["paths"]["/trainings/{training_id}/cancel"]["post"]
    assert cancel["operationId"] == "cancel_trainings__training_id__cancel_post"
    schemas = doc["components"]["schemas"]
    assert {"TrainingInput", "TrainingOutput", "TrainingRequest", "TrainingResponse"} <= set(
        schemas
    )
    assert schemas["TrainingInput"]["properties"]["steps"] == {
        "x-order": 0,
        "title": "Steps",
        "type": "integer",
        "default": 1,
        "minimum": 1,
    }
    assert list(schemas["Input"]["properties"]) == ["text"]


def test_without_train_there_is_no_training_api(serve_pair):
    """No train handler: no trainings_* keys and no training paths or schemas."""
    with serve_pair(train=None) as s:
        root = requests.get(s.url + "/", timeout=WAIT).json()
        doc = requests.get(s.url + "/openapi.json", timeout=WAIT).json()
    assert not [key for key in root if key.startswith("trainings")]
    assert not [path for path in doc["paths"] if path.startswith("/trainings")]
    assert "TrainingInput" not in doc["components"]["schemas"]


def test_dispatch_by_route(serve_pair):
    """/trainings runs train() and /predictions runs predict() (coglet's quirk §21.4 not copied)."""
    with serve_pair() as s:
        trained = create(s.url, "/trainings", {"id": "t1", "input": {"steps": 3}})
        predicted = create(s.url, "/predictions", {"id": "p1", "input": {"text": "a", "steps": 3}})
    assert trained.status_code == 200
    body = trained.json()
    assert set(body) == {"id", "logs", "metrics", "output", "status"}
    assert (body["id"], body["status"], body["output"], body["logs"]) == (
        "t1",
        "succeeded",
        "trained 3",
        "training 3\n",
    )
    assert predicted.json()["output"] == ["pred:a"]
    assert predicted.json()["logs"] == "predicting a\n"


def test_training_input_is_validated_against_training_input(serve_pair):
    """Training input errors come from TrainingInput; unknown keys are dropped."""
    with serve_pair() as s:
        bad = create(s.url, "/trainings", {"input": {"steps": 0, "text": "ignored"}})
        wrong_type = create(s.url, "/trainings", {"input": {"steps": "3"}})
    assert bad.status_code == 422
    assert bad.json() == {
        "detail": [
            {
                "loc": ["body", "input", "steps"],
                "msg": "0 is less than the minimum of 1",
                "type": "value_error",
            }
        ]
    }
    assert wrong_type.json()["detail"][0]["msg"] == '"3" is not of type "integer"'


def test_generated_training_ids_use_pred_prefix(serve_pair):
    """Trainings get pred_<hex> ids too."""
    with serve_pair() as s:
        body = create(s.url, "/trainings", {}).json()
    assert body["id"].startswith("pred_")
    assert int(body["id"][5:], 16) > 0


@pytest.mark.parametrize(
    ("source", "error"),
    [
        (TRAIN, "Prediction failed: Training failed: ValueError: bad steps"),
        (ASYNC_TRAIN, "Prediction failed: Async training failed: RuntimeError: no 1"),
    ],
)
def test_training_errors(serve_pair, source, error):
    """A raising train() fails with coglet's Training failed / Async training failed text."""
    with serve_pair(train=source) as s:
        r = create(s.url, "/trainings", {"id": "bad", "input": {"fail": True}})
        after = requests.get(s.url + "/health-check", timeout=WAIT).json()["status"]
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"id", "status", "error", "logs", "metrics"}
    assert (body["status"], body["error"]) == ("failed", error)
    assert after == "READY"


def test_put_training_and_id_mismatch(serve_pair):
    """PUT /trainings/{id} creates with the path id; a different body id gets the training 422."""
    with serve_pair() as s:
        made = create(s.url, "/trainings/t7", {"input": {"steps": 2}}, method="PUT")
        mismatch = create(s.url, "/trainings/a", {"id": "b"}, method="PUT")
    assert (made.json()["id"], made.json()["output"]) == ("t7", "trained 2")
    assert mismatch.status_code == 422
    assert (
        mismatch.content
        == json.dumps(
            {
                "detail": [
                    {
                        "loc": ["body", "id"],
                        "msg": "training ID must match the ID supplied in the URL",
                        "type": "value_error",
                    }
                ]
            },
            separators=(",", ":"),
        ).encode()
    )


def test_async_training_put_attach_and_cancel(serve_pair):
    """An async training is attached by PUT (202 + input) and canceled by /trainings/{id}/cancel."""
    with serve_pair() as s:
        started = create(
            s.url, "/trainings", {"id": "long", "input": {"hold": True}}, Prefer="respond-async"
        )
        assert (started.status_code, started.content) == (202, b'{"id":"long","status":"starting"}')
        attached = create(s.url, "/trainings/long", {"input": {"steps": 9}}, method="PUT")
        assert attached.status_code == 202
        assert attached.json()["input"] == {"hold": True}  # as sent: defaults not filled
        busy = create(s.url, "/predictions", {})
        assert busy.status_code == 409
        cancel = requests.post(s.url + "/trainings/long/cancel", timeout=WAIT)
        assert (cancel.status_code, cancel.content) == (200, b"{}")
        wait_until(
            lambda: requests.get(s.url + "/health-check", timeout=WAIT).json()["status"] == "READY"
        )
        gone = requests.post(s.url + "/trainings/long/cancel", timeout=WAIT)
        assert (gone.status_code, gone.content) == (404, b"{}")


def test_sync_training_canceled_shares_the_id_namespace(serve_pair):
    """A sync training with a client id is canceled through /predictions/{id}/cancel too."""
    with serve_pair() as s:
        result: dict[str, requests.Response] = {}
        sync = threading.Thread(
            target=lambda: result.setdefault(
                "r", create(s.url, "/trainings", {"id": "t", "input": {"hold": True}})
            )
        )
        sync.start()
        wait_until(
            lambda: requests.post(s.url + "/predictions/t/cancel", timeout=WAIT).status_code == 200
        )
        sync.join(WAIT)
        body = result["r"].json()
    assert (body["id"], body["status"]) == ("t", "canceled")
    assert set(body) == {"id", "status", "logs", "metrics"}


NOT_STREAMING = json.dumps({"error": STREAMING_ONLY}, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type"),
    [
        ("POST", "/trainings", b'{"input":{"steps":1}}', "application/json"),
        ("POST", "/trainings", b'{"input":{"steps":"x"}}', "application/json"),
        ("POST", "/trainings", b"ignored without a content type", None),
        ("PUT", "/trainings/s1", b'{"id":"other"}', "application/json"),
        ("PUT", "/trainings/s1", b'{"input":{"steps":0}}', "application/json"),
    ],
)
def test_sse_to_trainings_is_406(serve_pair, method, path, body, content_type):
    """SSE on a training route is 406 with coglet's body, before id and input checks."""
    headers = {"Accept": "text/event-stream"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    with serve_pair() as s:
        r = requests.request(method, s.url + path, data=body, headers=headers, timeout=WAIT)
        still_ready = requests.get(s.url + "/health-check", timeout=WAIT).json()["status"]
    assert r.status_code == 406
    assert r.headers["Content-Type"] == "application/json"
    assert r.content == NOT_STREAMING
    assert still_ready == "READY"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "prefix"),
    [
        (b"{not json", "application/json", 400, "Failed to parse the request body as JSON: "),
        (b"", "application/json", 400, "Failed to parse the request body as JSON: "),
        (b"hello", "text/plain", 415, "Expected request with `Content-Type: application/json`"),
        (
            b'{"id":5}',
            "application/json",
            422,
            "Failed to deserialize the JSON body into the target type: ",
        ),
    ],
)
def test_unparsable_body_beats_the_training_406(serve_pair, body, content_type, status, prefix):
    """As live coglet: a body that cannot be parsed gets its 400/415/422 text, not the 406."""
    with serve_pair() as s:
        r = requests.post(
            s.url + "/trainings",
            data=body,
            headers={"Accept": "text/event-stream", "Content-Type": content_type},
            timeout=WAIT,
        )
    assert r.status_code == status
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.text.startswith(prefix)


def test_class_with_run_and_train(tmp_path):
    """One class with run() and train() serves both routes and advertises trainings."""
    path = tmp_path / "both.py"
    path.write_text(BOTH)
    with serve_in_thread(f"{path}:Model") as s:
        root = requests.get(s.url + "/", timeout=WAIT).json()
        doc = requests.get(s.url + "/openapi.json", timeout=WAIT).json()
        trained = create(s.url, "/trainings", {"input": {"steps": 4}}).json()
        predicted = create(s.url, "/predictions", {"input": {"text": "q"}}).json()
    assert root["trainings_url"] == "/trainings"
    assert list(doc["components"]["schemas"]["TrainingInput"]["properties"]) == ["steps"]
    assert list(doc["components"]["schemas"]["Input"]["properties"]) == ["text"]
    assert trained["output"] == "train:4"
    assert predicted["output"] == "run:q"
