"""``PredictorSchema``: what the served OpenAPI document says about the predictor, read once.

Validation, the ``-i`` parser, ``%cog schema``, the curl examples, the widget's form and its
output view all need the same few facts: the ``Input``/``TrainingInput`` schema with its
``$ref``s inlined (as coglet's validator sees it), the ``Output``/``TrainingOutput`` schema and
the schema of one streamed chunk, whether predictions stream, which inputs are secrets. They
used to be dug out of the document in each of those places; the service now builds this object
once, when setup succeeds (``PredictionService.schema``), and they all read it. Code that only
has a document (``%cog schema NAME``, ``--check`` of an exported project) builds one from it.

Treat it as read-only: the schemas are shared by everyone who reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nbcog.core.validation import inline_refs


@dataclass(frozen=True)
class PredictorSchema:
    """The facts of one served predictor's OpenAPI document.

    Attributes:
        openapi: the document itself, as ``GET /openapi.json`` serves it.
        predict_input: the inlined ``Input`` schema; None without a predict handler.
        train_input: the inlined ``TrainingInput`` schema; None without a train handler.
        predict_output: the ``Output`` schema; None without a predict handler.
        train_output: the ``TrainingOutput`` schema; None without a train handler.
        streaming: ``POST /predictions`` is ``x-cog-streaming`` (the predictor opted in to SSE).
        max_concurrency: predictions that may run at once (the runner's slots).
    """

    openapi: Mapping[str, Any]
    predict_input: dict[str, Any] | None
    train_input: dict[str, Any] | None
    predict_output: dict[str, Any] | None
    train_output: dict[str, Any] | None
    streaming: bool
    max_concurrency: int = 1

    @classmethod
    def from_openapi(
        cls, openapi: Mapping[str, Any], *, max_concurrency: int = 1
    ) -> PredictorSchema:
        """Read ``openapi`` (a document ``nbcog.core.openapi.build_document`` wrote)."""
        components: Mapping[str, Any] = openapi["components"]["schemas"]

        def inlined(name: str) -> dict[str, Any] | None:
            schema = components.get(name)
            if schema is None:
                return None
            resolved: dict[str, Any] = inline_refs(schema, components)
            return resolved

        predict_post = openapi.get("paths", {}).get("/predictions", {}).get("post", {})
        return cls(
            openapi=openapi,
            predict_input=inlined("Input"),
            train_input=inlined("TrainingInput"),
            predict_output=components.get("Output"),
            train_output=components.get("TrainingOutput"),
            streaming=bool(predict_post.get("x-cog-streaming", False)),
            max_concurrency=max_concurrency,
        )

    def input(self, *, training: bool = False) -> dict[str, Any]:
        """The inlined input schema a prediction (or training) is validated against.

        A server with one kind of handler answers both routes with it, as coglet does, so
        the other kind's schema stands in when the asked one is missing.
        """
        preferred, other = (
            (self.train_input, self.predict_input)
            if training
            else (self.predict_input, self.train_input)
        )
        schema = preferred if preferred is not None else other
        return schema if schema is not None else {}

    def output(self, *, training: bool = False) -> dict[str, Any] | None:
        """The output schema of a prediction (or training); the other kind's if it is missing."""
        preferred, other = (
            (self.train_output, self.predict_output)
            if training
            else (self.predict_output, self.train_output)
        )
        return preferred if preferred is not None else other

    def secret_inputs(self, *, training: bool = False) -> tuple[str, ...]:
        """The names of the ``Secret`` inputs (``x-cog-secret``): never echoed, never shown."""
        properties: Mapping[str, Any] = self.input(training=training).get("properties", {})
        return tuple(
            name
            for name, schema in properties.items()
            if any(part.get("x-cog-secret") for part in [schema, *schema.get("allOf", [])])
        )
