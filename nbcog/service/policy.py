"""The request checks of spec §6, in one place and in coglet's order, and secret masking.

A create is checked as coglet checks it (live 0.23.1), after the front end parsed the body:

1. a training requested as SSE: 400 ``TrainingStreamingNotSupported``;
2. a PUT whose body id differs from the path id: 422;
3. (attaching to the in-flight PUT id, where SSE needs ``@streaming``: the facade's step);
4. not ready (or closing): 503; 5. SSE without ``@streaming``: 400;
6. the input against ``Input``/``TrainingInput``: 422 with every problem;
7. the id in flight already, or every slot busy: 409.

The front end keeps only its own parsing (HTTP: body size, content type, JSON, headers).
"""

from __future__ import annotations

from typing import Any

from nbcog.core.errors import (
    AtCapacity,
    InputValidationError,
    NotReady,
    StreamingNotSupported,
    TrainingStreamingNotSupported,
)
from nbcog.core.validation import validate_input
from nbcog.runner.runtime import Runtime
from nbcog.service.request import CreateRequest, Mode
from nbcog.service.setup import SetupState

SECRET_MASK = "**********"  # noqa: S105 - the mask shown instead of a secret


class RequestPolicy:
    """Decides whether a request may create (or attach to) a prediction, and what it echoes.

    Args:
        runtime: the served predictor (its handlers' ``@streaming`` and its slots).
        setup: where setup is, and the input schemas it produced.
    """

    def __init__(self, runtime: Runtime, setup: SetupState) -> None:
        self._runtime = runtime
        self._setup = setup

    @property
    def streaming(self) -> bool:
        """The predict handler opted in to SSE with ``@streaming``."""
        predict = self._runtime.predict
        return predict is not None and predict.streaming

    def check_request(
        self, request: CreateRequest, mode: Mode, *, training: bool, put_id: str | None
    ) -> None:
        """Steps 1-2: what is wrong with the request itself, whatever the server's state.

        Raises:
            TrainingStreamingNotSupported, InputValidationError (the id mismatch).
        """
        if training and mode is Mode.SSE:
            raise TrainingStreamingNotSupported
        if put_id is not None and request.id is not None and request.id != put_id:
            noun = "training" if training else "prediction"
            mismatch = {
                "loc": ["body", "id"],
                "msg": f"{noun} ID must match the ID supplied in the URL",
                "type": "value_error",
            }
            raise InputValidationError([mismatch])

    def check_attach(self, mode: Mode) -> None:
        """Step 3: a PUT of an in-flight id may stream only from a ``@streaming`` handler.

        Raises:
            StreamingNotSupported.
        """
        if mode is Mode.SSE and not self.streaming:
            raise StreamingNotSupported

    def check_create(self, mode: Mode, *, closed: bool) -> None:
        """Steps 4-5: the server can take a create in this mode.

        Raises:
            NotReady, StreamingNotSupported.
        """
        if not self._setup.is_ready or closed:
            raise NotReady
        if mode is Mode.SSE and not self.streaming:
            raise StreamingNotSupported

    def validate(self, request: CreateRequest, *, training: bool) -> dict[str, Any]:
        """Step 6: validate the input against ``Input``/``TrainingInput`` (spec §7).

        Raises:
            InputValidationError: with every problem, in coglet's order.
        """
        assert self._setup.schema is not None  # check_create ran first: setup succeeded
        schema = self._setup.schema.input(training=training)
        payload = {} if request.input is None else request.input
        values, errors = validate_input(schema, payload)
        if errors:
            raise InputValidationError(errors)
        return values

    def check_capacity(self, *, id_in_flight: bool, busy: int) -> None:
        """Step 7: a free slot, and an id not in flight already.

        Raises:
            AtCapacity.
        """
        if id_in_flight or busy >= self._runtime.slots:
            raise AtCapacity

    def echo_input(self, values: dict[str, Any], *, training: bool) -> dict[str, Any]:
        """The input as the prediction shows it: ``Secret`` strings masked (spec §7)."""
        assert self._setup.schema is not None  # validated already
        props = self._setup.schema.input(training=training).get("properties", {})
        return {
            key: SECRET_MASK
            if isinstance(value, str) and props.get(key, {}).get("x-cog-secret")
            else value
            for key, value in values.items()
        }
