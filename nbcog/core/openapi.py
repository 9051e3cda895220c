"""The OpenAPI document served at ``/openapi.json`` (spec §5).

coglet serves the file ``cog build`` writes, generated statically by cog's Go code
(``pkg/schema/openapi_spec.go`` and ``generator.go``). nbcog builds the same document from
introspected handler schemas: this module holds the fixed parts (paths, request/response,
status and validation-error components) and the predict + train merge; the ``Input``/``Output``
components come from ``nbcog.runner.cog_adapter``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

_REF = "#/components/schemas/"


@dataclass(frozen=True)
class HandlerSchema:
    """What the document needs to know about one handler (``predict()``/``run()`` or ``train()``).

    Attributes:
        input: the ``Input``/``TrainingInput`` component; choices point into ``enums``.
        output: the ``Output``/``TrainingOutput`` component.
        enums: one enum component per ``choices`` input, keyed by parameter name.
        streaming: the handler is decorated with ``@streaming`` (``x-cog-streaming``).
    """

    input: dict[str, Any]
    output: dict[str, Any]
    enums: dict[str, dict[str, Any]] = field(default_factory=dict)
    streaming: bool = False


def title_case(name: str) -> str:
    """Cog's titles: split on ``_``, capitalise each part's first letter (``Fail At``)."""
    return " ".join(part[:1].upper() + part[1:] for part in name.split("_"))


def build_document(
    *, cog_version: str, predict: HandlerSchema | None, train: HandlerSchema | None
) -> dict[str, Any]:
    """The whole document; with both handlers, train's paths and schemas join predict's.

    As in cog's ``MergeSchemas``, the predict document is the base and a train key that
    already exists there (an enum component with the same parameter name) is not overwritten.
    """
    if predict is None and train is None:
        msg = "an OpenAPI document needs a predict or a train handler"
        raise ValueError(msg)
    docs = [
        _single_document(cog_version, schema, training)
        for schema, training in ((predict, False), (train, True))
        if schema is not None
    ]
    base, *rest = docs
    for extra in rest:
        for key, value in extra["paths"].items():
            base["paths"].setdefault(key, value)
        for key, value in extra["components"]["schemas"].items():
            base["components"]["schemas"].setdefault(key, value)
    return base


def _single_document(cog_version: str, schema: HandlerSchema, training: bool) -> dict[str, Any]:
    """``buildOpenAPISpec`` for one mode."""
    if training:
        noun, plural, prefix, verb = "training", "trainings", "Training", "Train"
        input_key, output_key = "TrainingInput", "TrainingOutput"
    else:
        noun, plural, prefix, verb = "prediction", "predictions", "Prediction", "Predict"
        input_key, output_key = "Input", "Output"
    request_key, response_key = f"{prefix}Request", f"{prefix}Response"
    input_ref, output_ref = {"$ref": _REF + input_key}, {"$ref": _REF + output_key}
    schemas: dict[str, Any] = {
        input_key: {**copy.deepcopy(schema.input), "title": input_key},
        output_key: copy.deepcopy(schema.output),
        **copy.deepcopy(schema.enums),
        request_key: {
            "title": request_key,
            "type": "object",
            "properties": {"id": {"title": "Id", "type": "string"}, "input": input_ref},
        },
        response_key: {
            "title": response_key,
            "type": "object",
            "properties": {
                "input": input_ref,
                "output": output_ref,
                "id": {"title": "Id", "type": "string"},
                "version": {"title": "Version", "type": "string"},
                "created_at": _date_time("Created At"),
                "started_at": _date_time("Started At"),
                "completed_at": _date_time("Completed At"),
                "status": {"title": "Status", "type": "string"},
                "error": {"title": "Error", "type": "string"},
                "logs": {"title": "Logs", "type": "string"},
                "metrics": {"title": "Metrics", "type": "object"},
            },
        },
        "Status": {
            "title": "Status",
            "description": "An enumeration.",
            "enum": ["starting", "processing", "succeeded", "canceled", "failed"],
            "type": "string",
        },
        "HTTPValidationError": {
            "title": "HTTPValidationError",
            "type": "object",
            "properties": {
                "detail": {
                    "title": "Detail",
                    "type": "array",
                    "items": {"$ref": _REF + "ValidationError"},
                }
            },
        },
        "ValidationError": {
            "title": "ValidationError",
            "required": ["loc", "msg", "type"],
            "type": "object",
            "properties": {
                "loc": {
                    "title": "Location",
                    "type": "array",
                    "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                },
                "msg": {"title": "Message", "type": "string"},
                "type": {"title": "Error Type", "type": "string"},
            },
        },
    }
    operation: dict[str, Any] = {
        "summary": verb,
        "description": f"Run a single {noun} on the model",
        "operationId": f"{verb.lower()}_{plural}_post",
        "requestBody": {"content": {"application/json": {"schema": {"$ref": _REF + request_key}}}},
        "responses": {
            "200": _response("Successful Response", {"$ref": _REF + response_key}),
            "422": _validation_error_response(),
        },
    }
    if schema.streaming and not training:
        operation["x-cog-streaming"] = True
    id_param = f"{noun}_id"
    paths = {
        "/": {"get": _plain_get("Root", "root__get")},
        "/health-check": {"get": _plain_get("Healthcheck", "healthcheck_health_check_get")},
        f"/{plural}": {"post": operation},
        f"/{plural}/{{{id_param}}}/cancel": {
            "post": {
                "summary": "Cancel",
                "operationId": f"cancel_{plural}__{id_param}__cancel_post",
                "parameters": [
                    {
                        "required": True,
                        "schema": {"title": title_case(id_param), "type": "string"},
                        "name": id_param,
                        "in": "path",
                    }
                ],
                "responses": {
                    "200": {"description": "Successful Response", "content": _empty_json()},
                    "422": _validation_error_response(),
                },
            }
        },
    }
    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": cog_version},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _date_time(title: str) -> dict[str, Any]:
    return {"title": title, "type": "string", "format": "date-time"}


def _empty_json() -> dict[str, Any]:
    return {"application/json": {"schema": {}}}


def _response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _validation_error_response() -> dict[str, Any]:
    return _response("Validation Error", {"$ref": _REF + "HTTPValidationError"})


def _plain_get(summary: str, operation_id: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "operationId": operation_id,
        "responses": {"200": {"description": "Successful Response", "content": _empty_json()}},
    }
