"""Typed errors raised by the core and the service; the HTTP layer maps each to one response.

Each error carries the exact status and JSON body coglet sends, so the translation to HTTP is
a single lookup in ``nbcog.http.handlers`` and the widget can show the same message.
``describe_exception`` is how any layer names an exception in those messages.
"""

from __future__ import annotations

from typing import Any

from nbcog.core.strictjson import scrub_surrogates


def describe_exception(exc: BaseException) -> str:
    """``{E}`` of the spec (§9.4): ``ValueError: boom``, ``KeyError: 'k'``, ``SystemExit: 3``.

    Lone surrogates (an exception quoting ``os.fsdecode(b"\\xff")``) become U+FFFD, so the
    error can always be sent.
    """
    return scrub_surrogates(f"{type(exc).__qualname__}: {exc}")


class NbcogError(Exception):
    """Base class: an expected failure with an HTTP status and a JSON body."""

    status: int = 500

    def __init__(self, body: Any) -> None:
        super().__init__(body)
        self.body = body


class NotReady(NbcogError):
    """Setup has not finished (or failed): creates get 503."""

    status = 503

    def __init__(self) -> None:
        super().__init__(
            {
                "error": "Setup has not finished yet. Wait until it has finished, "
                "or GET /health-check for status.",
                "status": "failed",
            }
        )


class AtCapacity(NbcogError):
    """Every prediction slot is busy (or a POST reused an in-flight id): 409."""

    status = 409

    def __init__(self) -> None:
        super().__init__({"error": "At capacity - all prediction slots busy", "status": "failed"})


class StreamingNotSupported(NbcogError):
    """An SSE request for a predictor without ``@streaming``: 406."""

    status = 406

    def __init__(self) -> None:
        super().__init__(
            {
                "error": "This model does not support streaming responses. "
                "Add @cog.streaming to predict() to enable SSE."
            }
        )


class TrainingStreamingNotSupported(NbcogError):
    """An SSE request to a training route: 406, checked before the body is read."""

    status = 406

    def __init__(self) -> None:
        super().__init__({"error": "Training endpoints do not support streaming responses."})


class TooManySubscribers(NbcogError):
    """More stream subscribers than a prediction allows: 429."""

    status = 429

    def __init__(self) -> None:
        super().__init__({"error": "Too many stream subscribers"})


class InputValidationError(NbcogError):
    """Inputs (or the PUT id) failed validation: 422 in Cog's ``detail`` format.

    ``detail`` entries never echo more of the input than coglet's own messages do.
    """

    status = 422

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__({"detail": detail})
        self.detail = detail


class InvalidTransition(Exception):
    """A prediction was asked to move to a state its current state does not allow.

    Raised by the core state machine; the prediction is left unchanged. It signals a bug in
    nbcog, never bad user input, so it is not an ``NbcogError``.
    """
