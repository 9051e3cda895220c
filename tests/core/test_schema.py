"""PredictorSchema: the facts of an OpenAPI document that a real predictor produced."""

from __future__ import annotations

import json
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbcog.core.schema import PredictorSchema
from nbcog.core.validation import validate_input
from nbcog.runner.runtime import Runtime
from nbcog.service import Health

PREDICT = """
from cog import BaseRunner, ConcatenateIterator, Input, Path, Secret, streaming

class Predictor(BaseRunner):
    @streaming
    def run(
        self,
        prompt: str = Input(description="what to say"),
        color: str = Input(choices=["red", "green"], default="red"),
        api_key: Secret = Input(default=None),
        images: list[Path] = Input(default=[]),
    ) -> ConcatenateIterator[str]:
        yield prompt
"""

TRAIN = """
from cog import Input, Path

def train(steps: int = Input(default=1, ge=1), token: str = "") -> Path:
    return Path("weights.bin")
"""

PLAIN = """
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self, n: int = 1) -> list[int]:
        return [n]
"""


def _write(tmp_path: Path, name: str, source: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return str(path)


def _document(predictor: str, train: str | None = None) -> dict[str, Any]:
    runtime = Runtime(predictor, train=train)
    try:
        runtime.load()
        return runtime.openapi()
    finally:
        runtime.close()


@pytest.fixture
def both(tmp_path: Path) -> dict[str, Any]:
    """The document of a streaming predictor with a separate train function."""
    predict = _write(tmp_path, "predict", PREDICT) + ":Predictor"
    return _document(predict, _write(tmp_path, "train", TRAIN) + ":train")


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if "$ref" in value:
            yield value["$ref"]
        for item in value.values():
            yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def test_inputs_are_inlined_as_validation_sees_them(both):
    """No $ref is left: the choices enum is inlined, and validation gives coglet's messages."""
    schema = PredictorSchema.from_openapi(both)
    predict_input = schema.input()
    assert list(_refs(predict_input)) == []
    assert list(_refs(both["components"]["schemas"]["Input"])) != []  # the document keeps them
    assert predict_input["properties"]["color"]["allOf"][0]["enum"] == ["red", "green"]
    _, errors = validate_input(predict_input, {"prompt": "hi", "color": "blue"})
    assert [error["loc"] for error in errors] == [["body", "input", "color"]]
    assert validate_input(predict_input, {"prompt": "hi", "extra": 1}) == ({"prompt": "hi"}, [])


def test_training_reads_its_own_schemas(both):
    """TrainingInput/TrainingOutput for trainings, Input/Output for predictions."""
    schema = PredictorSchema.from_openapi(both)
    assert sorted(schema.input(training=True)["properties"]) == ["steps", "token"]
    assert sorted(schema.input()["properties"]) == ["api_key", "color", "images", "prompt"]
    assert schema.output(training=True) == both["components"]["schemas"]["TrainingOutput"]
    assert schema.output(training=True)["format"] == "uri"
    output = schema.output()
    assert output == both["components"]["schemas"]["Output"]
    assert output["x-cog-array-display"] == "concatenate"


def test_streaming_and_secrets(both):
    """The SSE opt-in comes from /predictions; Secret inputs are named, per handler."""
    schema = PredictorSchema.from_openapi(both)
    assert schema.streaming is True
    assert schema.secret_inputs() == ("api_key",)
    assert schema.secret_inputs(training=True) == ()
    assert schema.openapi is both


def test_without_a_train_handler_trainings_read_the_predict_schemas(tmp_path):
    """One handler answers both routes (as coglet does), so its schemas stand in."""
    schema = PredictorSchema.from_openapi(_document(_write(tmp_path, "p", PLAIN) + ":Predictor"))
    assert schema.train_input is None and schema.train_output is None
    assert schema.input(training=True) is schema.input()
    assert schema.output(training=True) == {
        "title": "Output",
        "type": "array",
        "items": {"type": "integer"},
    }
    assert schema.streaming is False
    assert schema.max_concurrency == 1


def test_the_service_builds_it_once_setup_succeeds(serve_source):
    """service.schema holds the served document (GET /openapi.json) and the runner's slots."""
    with serve_source(PREDICT) as running:
        service = running.server.service
        assert service is not None
        schema = running.call(lambda: service.schema)
        with urllib.request.urlopen(f"{running.url}/openapi.json") as response:
            served = json.load(response)
    assert schema is not None
    assert json.loads(json.dumps(schema.openapi)) == served
    assert schema.max_concurrency == 1
    assert schema.secret_inputs() == ("api_key",)


def test_no_schema_when_setup_fails(serve_source):
    """Before (and without) a successful setup there is nothing to read."""
    failing = PREDICT.replace(
        "    @streaming", "    def setup(self):\n        raise OSError\n\n    @streaming"
    )
    with serve_source(failing) as running:
        assert running.health is Health.SETUP_FAILED
        service = running.server.service
        assert service is not None
        assert running.call(lambda: service.schema) is None
