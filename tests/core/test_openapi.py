"""The OpenAPI document: fixed paths and components, streaming flag, predict + train merge (§5)."""

from __future__ import annotations

from typing import Any

import pytest

from nbcog.core.openapi import HandlerSchema, build_document, title_case

INPUT = {
    "title": "Input",
    "type": "object",
    "properties": {"s": {"title": "S", "type": "string", "x-order": 0}},
    "required": ["s"],
}
OUTPUT = {"title": "Output", "type": "string"}
OK_ANY = {
    "200": {"description": "Successful Response", "content": {"application/json": {"schema": {}}}}
}
VALIDATION_ERROR = {
    "description": "Validation Error",
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
    },
}


def handler(**changes: Any) -> HandlerSchema:
    return HandlerSchema(
        **{"input": INPUT, "output": OUTPUT, "enums": {}, "streaming": False, **changes}
    )


def post_operation(noun: str, plural: str, verb: str, prefix: str) -> dict[str, Any]:
    return {
        "summary": verb,
        "description": f"Run a single {noun} on the model",
        "operationId": f"{verb.lower()}_{plural}_post",
        "requestBody": {
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{prefix}Request"}}
            }
        },
        "responses": {
            "200": {
                "description": "Successful Response",
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{prefix}Response"}
                    }
                },
            },
            "422": VALIDATION_ERROR,
        },
    }


def cancel_operation(noun: str, plural: str) -> dict[str, Any]:
    return {
        "summary": "Cancel",
        "operationId": f"cancel_{plural}__{noun}_id__cancel_post",
        "parameters": [
            {
                "required": True,
                "schema": {"title": f"{noun.title()} Id", "type": "string"},
                "name": f"{noun}_id",
                "in": "path",
            }
        ],
        "responses": {**OK_ANY, "422": VALIDATION_ERROR},
    }


def request_response(prefix: str, input_key: str, output_key: str) -> dict[str, Any]:
    date_time = {"type": "string", "format": "date-time"}
    return {
        f"{prefix}Request": {
            "title": f"{prefix}Request",
            "type": "object",
            "properties": {
                "id": {"title": "Id", "type": "string"},
                "input": {"$ref": f"#/components/schemas/{input_key}"},
            },
        },
        f"{prefix}Response": {
            "title": f"{prefix}Response",
            "type": "object",
            "properties": {
                "input": {"$ref": f"#/components/schemas/{input_key}"},
                "output": {"$ref": f"#/components/schemas/{output_key}"},
                "id": {"title": "Id", "type": "string"},
                "version": {"title": "Version", "type": "string"},
                "created_at": {"title": "Created At", **date_time},
                "started_at": {"title": "Started At", **date_time},
                "completed_at": {"title": "Completed At", **date_time},
                "status": {"title": "Status", "type": "string"},
                "error": {"title": "Error", "type": "string"},
                "logs": {"title": "Logs", "type": "string"},
                "metrics": {"title": "Metrics", "type": "object"},
            },
        },
    }


FIXED_SCHEMAS = {
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
                "items": {"$ref": "#/components/schemas/ValidationError"},
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
ROOT_PATHS = {
    "/": {"get": {"summary": "Root", "operationId": "root__get", "responses": OK_ANY}},
    "/health-check": {
        "get": {
            "summary": "Healthcheck",
            "operationId": "healthcheck_health_check_get",
            "responses": OK_ANY,
        }
    },
}


def test_predict_document_matches_cogs_generator_exactly() -> None:
    """A predict-only document has cog's four paths and fixed components, key for key."""
    assert build_document(cog_version="0.23.1", predict=handler(), train=None) == {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": "0.23.1"},
        "paths": {
            **ROOT_PATHS,
            "/predictions": {
                "post": post_operation("prediction", "predictions", "Predict", "Prediction")
            },
            "/predictions/{prediction_id}/cancel": {
                "post": cancel_operation("prediction", "predictions")
            },
        },
        "components": {
            "schemas": {
                "Input": INPUT,
                "Output": OUTPUT,
                **request_response("Prediction", "Input", "Output"),
                **FIXED_SCHEMAS,
            }
        },
    }


def test_train_document_uses_training_names() -> None:
    """A train-only document has trainings paths and Training* components, no predictions."""
    document = build_document(cog_version="0.23.1", predict=None, train=handler())
    assert document["paths"] == {
        **ROOT_PATHS,
        "/trainings": {"post": post_operation("training", "trainings", "Train", "Training")},
        "/trainings/{training_id}/cancel": {"post": cancel_operation("training", "trainings")},
    }
    assert document["components"]["schemas"] == {
        "TrainingInput": {**INPUT, "title": "TrainingInput"},
        "TrainingOutput": OUTPUT,
        **request_response("Training", "TrainingInput", "TrainingOutput"),
        **FIXED_SCHEMAS,
    }


def test_streaming_flag_is_set_only_for_streaming_predict() -> None:
    """x-cog-streaming appears on /predictions only when predict is @streaming."""
    plain = build_document(cog_version="0.23.1", predict=handler(), train=None)
    streaming = build_document(cog_version="0.23.1", predict=handler(streaming=True), train=None)
    assert "x-cog-streaming" not in plain["paths"]["/predictions"]["post"]
    assert streaming["paths"]["/predictions"]["post"]["x-cog-streaming"] is True


def test_trainings_never_carry_the_streaming_flag() -> None:
    """A streaming train handler still gets no x-cog-streaming."""
    document = build_document(cog_version="0.23.1", predict=None, train=handler(streaming=True))
    assert "x-cog-streaming" not in document["paths"]["/trainings"]["post"]


def test_train_merges_into_predict_without_overwriting() -> None:
    """With both handlers train adds its paths and schemas; a clashing enum keeps predict's."""
    color = {"title": "color", "description": "An enumeration.", "enum": ["red"], "type": "string"}
    other = {**color, "enum": ["blue"]}
    document = build_document(
        cog_version="0.23.1",
        predict=handler(enums={"color": color}, streaming=True),
        train=handler(enums={"color": other, "size": other}),
    )
    assert list(document["paths"]) == [
        "/",
        "/health-check",
        "/predictions",
        "/predictions/{prediction_id}/cancel",
        "/trainings",
        "/trainings/{training_id}/cancel",
    ]
    schemas = document["components"]["schemas"]
    assert schemas["color"] == color
    assert schemas["size"] == other
    assert schemas["TrainingInput"]["title"] == "TrainingInput"
    assert schemas["Input"]["title"] == "Input"
    assert document["paths"]["/predictions"]["post"]["x-cog-streaming"] is True


def test_document_is_independent_of_the_handler_schema() -> None:
    """Changing the returned document never changes the HandlerSchema it came from."""
    schema = handler()
    build_document(cog_version="0.23.1", predict=schema, train=None)["components"]["schemas"][
        "Input"
    ]["properties"]["s"]["title"] = "changed"
    assert schema.input["properties"]["s"]["title"] == "S"


def test_a_document_needs_a_handler() -> None:
    """Neither predict nor train is an error."""
    with pytest.raises(ValueError) as raised:
        build_document(cog_version="0.23.1", predict=None, train=None)
    assert str(raised.value) == "an OpenAPI document needs a predict or a train handler"


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("fail_at", "Fail At"),
        ("s", "S"),
        ("max_new_tokens", "Max New Tokens"),
        ("myURL_x", "MyURL X"),
    ],
)
def test_title_case_capitalises_each_underscore_part(name: str, title: str) -> None:
    """Titles split on underscores and upper-case only each part's first letter."""
    assert title_case(name) == title
