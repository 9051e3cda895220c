"""The spec §6 checks the service makes, each rejected as coglet rejects it, and in its order."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbcog.core.errors import (
    AtCapacity,
    InputValidationError,
    NotReady,
    StreamingNotSupported,
    TrainingStreamingNotSupported,
)
from nbcog.service import SECRET_MASK, CreateRequest, Mode

ECHO = """
import os
import time

from cog import BasePredictor, Input, Secret


class Predictor(BasePredictor):
    def predict(self, text: str = "hi", token: Secret = Input(default=None), gate: str = "") -> str:
        while gate and not os.path.exists(gate):
            time.sleep(0.005)
        return text + ":" + (token.get_secret_value() if token is not None else "")
"""


def test_nothing_is_created_before_setup_or_after_close(make_service):
    """Not ready yet, or closing: 503 NotReady."""
    service, _ = make_service(ECHO, start=False)
    with pytest.raises(NotReady):
        service.create(CreateRequest(), mode=Mode.ASYNC)
    ready, _ = make_service(ECHO)
    ready.close()
    with pytest.raises(NotReady):
        ready.create(CreateRequest(), mode=Mode.ASYNC)


def test_a_streamed_training_is_refused_before_anything_else(make_service):
    """Step 1 comes first: even before setup, and with a mismatched PUT id."""
    service, _ = make_service(ECHO, start=False)
    request = CreateRequest(id="a")
    with pytest.raises(TrainingStreamingNotSupported):
        service.create_or_attach(request, mode=Mode.SSE, training=True, put_id="b")


@pytest.mark.parametrize("training", [False, True])
def test_a_put_id_must_match_the_body_id(make_service, training):
    """Step 2: a 422 naming the body id, with the kind of request in its message."""
    service, _ = make_service(ECHO, start=False)  # before readiness, as coglet
    with pytest.raises(InputValidationError) as caught:
        service.create_or_attach(
            CreateRequest(id="a"), mode=Mode.ASYNC, training=training, put_id="b"
        )
    noun = "training" if training else "prediction"
    assert caught.value.detail == [
        {
            "loc": ["body", "id"],
            "msg": f"{noun} ID must match the ID supplied in the URL",
            "type": "value_error",
        }
    ]


def test_sse_needs_the_streaming_opt_in_to_create_and_to_attach(make_service, tmp_path: Path):
    """Step 5 for a create, step 3 for a PUT of an id in flight; other modes attach."""
    service, loop = make_service(ECHO)
    with pytest.raises(StreamingNotSupported):
        service.create(CreateRequest(), mode=Mode.SSE)
    gate = tmp_path / "gate"
    ref = service.create(CreateRequest(input={"gate": str(gate)}), mode=Mode.ASYNC, put_id="x")
    with pytest.raises(StreamingNotSupported):
        service.create_or_attach(CreateRequest(), mode=Mode.SSE, training=False, put_id="x")
    attached, was_in_flight = service.create_or_attach(
        CreateRequest(), mode=Mode.SYNC, training=False, put_id="x"
    )
    assert (attached, was_in_flight) == (ref, True)
    gate.touch()
    loop.run_until(lambda: ref.is_terminal, "the prediction")


def test_invalid_input_is_refused_with_every_problem(make_service):
    """Step 6: the input against the schema, all problems at once."""
    service, _ = make_service(ECHO)
    with pytest.raises(InputValidationError) as caught:
        service.create(CreateRequest(input={"text": 5, "extra": 1}), mode=Mode.ASYNC)
    assert [problem["loc"] for problem in caught.value.detail] == [["body", "input", "text"]]
    assert service.inflight() == []


def test_a_busy_slot_or_an_id_in_flight_is_a_conflict(make_service, tmp_path: Path):
    """Step 7, after the input was found valid."""
    service, loop = make_service(ECHO)
    gate = tmp_path / "gate"
    ref = service.create(CreateRequest(id="one", input={"gate": str(gate)}), mode=Mode.ASYNC)
    with pytest.raises(AtCapacity):
        service.create(CreateRequest(), mode=Mode.ASYNC)
    with pytest.raises(InputValidationError):  # validation comes before capacity
        service.create(CreateRequest(input={"text": 5}), mode=Mode.ASYNC)
    gate.touch()
    loop.run_until(lambda: ref.is_terminal, "the prediction")
    assert service.create(CreateRequest(id="one"), mode=Mode.ASYNC).id == "one"


def test_secrets_are_masked_in_what_the_prediction_shows(make_service):
    """The predictor gets the secret; the prediction's input (and so every view) does not."""
    service, loop = make_service(ECHO)
    ref = service.create(CreateRequest(input={"text": "a", "token": "s3cret"}), mode=Mode.ASYNC)
    loop.run_until(lambda: ref.is_terminal, "the prediction")
    assert ref.prediction.output == "a:s3cret"
    assert ref.prediction.input == {"text": "a", "token": SECRET_MASK}
