"""Parsing the create-request envelope (spec §6) with coglet's statuses and texts.

pydantic earns its place here: strict field types give coglet's 422 for ``"id": 5``, an
unknown ``webhook_events_filter`` value or a non-string context value, and unknown top-level
fields are ignored. The ``detail`` after coglet's fixed prefix is free-form.
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from nbcog.core import strictjson
from nbcog.service import CreateRequest

JSON_PARSE_PREFIX = "Failed to parse the request body as JSON: "
DESERIALIZE_PREFIX = "Failed to deserialize the JSON body into the target type: "
WRONG_CONTENT_TYPE = "Expected request with `Content-Type: application/json`"

WebhookEvent = Literal["start", "output", "logs", "completed"]


class EnvelopeError(Exception):
    """A malformed request body: ``status`` and a plain-text message."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class _Envelope(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore", strict=True)

    id: str | None = None
    input: Any = None
    webhook: str | None = None
    webhook_events_filter: list[WebhookEvent] | None = None
    context: dict[str, str] | None = None


def is_json_content_type(value: str) -> bool:
    """``application/json`` or ``application/<x>+json``, parameters ignored."""
    mime = value.split(";", 1)[0].strip().lower()
    return mime == "application/json" or (
        mime.startswith("application/") and mime.endswith("+json")
    )


def _describe(error: pydantic.ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    return f"{location}: {first['msg']}" if location else first["msg"]


def parse_envelope(content_type: str | None, body: bytes) -> CreateRequest:
    """Turn a create body into a ``CreateRequest``.

    Raises:
        EnvelopeError: 415 for a non-JSON content type, 400 for invalid JSON (as coglet
            parses it: strict UTF-8, no lone surrogates, NaN or BOM, nesting under 128), 422
            for wrong field types. No content type at all means an empty envelope.
    """
    if content_type is None:
        return CreateRequest()
    if not is_json_content_type(content_type):
        raise EnvelopeError(415, WRONG_CONTENT_TYPE)
    try:
        raw = strictjson.loads(body)
    except strictjson.JSONBodyError as exc:
        raise EnvelopeError(400, JSON_PARSE_PREFIX + str(exc)) from None
    try:
        envelope = _Envelope.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise EnvelopeError(422, DESERIALIZE_PREFIX + _describe(exc)) from None
    return CreateRequest(
        id=envelope.id,
        input=envelope.input,
        webhook=envelope.webhook,
        webhook_events_filter=(
            None
            if envelope.webhook_events_filter is None
            else frozenset(envelope.webhook_events_filter)
        ),
        context=envelope.context or {},
    )
