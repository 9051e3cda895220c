"""The output classifier, on outputs and output schemas that real predictors produced."""

from __future__ import annotations

import json
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from nbcog.core.outputs import (
    FilePart,
    JsonPart,
    chunk_part,
    chunk_schema,
    data_url_bytes,
    file_part,
    output_parts,
)
from nbcog.core.schema import PredictorSchema
from nbcog.runner.runtime import Runtime

FILES = """
from typing import Iterator
from cog import BaseRunner, Path

class Predictor(BaseRunner):
    def run(self) -> Iterator[Path]:
        for name, data in (("dot.png", b"\\x89PNG"), ("notes.bin", b"\\x00\\x01\\x02")):
            path = Path(__file__).with_name(name)
            path.write_bytes(data)
            yield path
"""

TOKENS = """
from cog import BaseRunner, ConcatenateIterator

class Predictor(BaseRunner):
    def run(self) -> ConcatenateIterator[str]:
        yield "data:,"
        yield "https://example.com/a.png"
"""

UNTYPED = """
from typing import Any
from cog import BaseRunner

class Predictor(BaseRunner):
    def run(self) -> Any:
        return None
"""

OBJECT = """
from cog import BaseModel, BaseRunner

class Out(BaseModel):
    label: str

class Predictor(BaseRunner):
    def run(self) -> Out:
        return Out(label="cat")
"""


def _output_schema(tmp_path: Path, source: str) -> dict[str, Any]:
    path = tmp_path / f"predict_{abs(hash(source))}.py"
    path.write_text(textwrap.dedent(source))
    runtime = Runtime(f"{path}:Predictor")
    try:
        runtime.load()
        schema = PredictorSchema.from_openapi(runtime.openapi()).output()
    finally:
        runtime.close()
    assert schema is not None
    return schema


def _predict(url: str) -> Any:
    request = urllib.request.Request(
        f"{url}/predictions", data=b"{}", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)["output"]


def test_served_file_outputs_are_files_for_both_questions(serve_source):
    """Path chunks (data URLs) are files with their MIME type, size and a suggested name."""
    with serve_source(FILES) as running:
        output = _predict(running.url)
        document = json.load(urllib.request.urlopen(f"{running.url}/openapi.json"))
    schema = PredictorSchema.from_openapi(document).output()
    png, other = output
    items = chunk_schema(schema)
    assert items == {"type": "string", "format": "uri"}
    assert chunk_part(png, 0, items) == FilePart(png, 0, "image/png", None)
    assert chunk_part(other, 1, items) == FilePart(other, 1, "application/octet-stream", None)
    whole = output_parts(output, schema)
    assert whole == [
        FilePart(png, 0, "image/png", None),
        FilePart(other, 1, "application/octet-stream", None),
    ]
    assert [part.size for part in whole if isinstance(part, FilePart)] == [4, 3]
    assert [part.suggested_name for part in whole if isinstance(part, FilePart)] == [
        "output.png",
        "output.1.bin",
    ]
    assert data_url_bytes(png) == b"\x89PNG"


def test_tokens_of_a_concatenate_iterator_stay_text(tmp_path):
    """A str chunk is text when the schema says plain string, whatever it looks like."""
    schema = _output_schema(tmp_path, TOKENS)
    items = chunk_schema(schema)
    assert chunk_part("data:,x;base64,AA", 0, items) == "data:,x;base64,AA"
    assert chunk_part("https://example.com/a.png", 1, items) == "https://example.com/a.png"
    assert output_parts(["data:", "https://example.com/a.png"], schema) == [
        "data:https://example.com/a.png"
    ]


def test_untyped_chunks_are_files_only_as_base64_data_urls(tmp_path):
    """Not typed as a string, a chunk is a file if it is a base64 data: URL, else text."""
    items = chunk_schema(_output_schema(tmp_path, UNTYPED))
    assert items == {"title": "Output", "type": "object"}  # what cog says of Any
    url = "data:audio/wav;base64,UklGRg=="
    assert chunk_part(url, 2, items) == FilePart(url, 2, "audio/wav", None)
    assert chunk_part("data:,plain", 0, items) == "data:,plain"
    assert chunk_part({"a": 1}, 0, items) == JsonPart({"a": 1})


def test_whole_outputs_go_by_shape(tmp_path):
    """A finished output: data: URLs and typed http(s) file URLs are files, the rest JSON/text."""
    schema = _output_schema(tmp_path, OBJECT)
    assert output_parts({"label": "cat"}, schema) == [JsonPart({"label": "cat"})]
    assert output_parts(None, schema) == []
    assert output_parts("https://example.com/", schema) == ["https://example.com/"]
    signed = "https://bucket.example/out%20put.jpg?sig=1"
    (image,) = output_parts(signed)
    assert image == FilePart(signed, 0, "image/jpeg", "out put.jpg")
    assert (image.size, image.suggested_name) == (None, "out put.jpg")
    assert output_parts([signed, 1]) == [JsonPart([signed, 1])]
    assert output_parts("data:,hi") == [FilePart("data:,hi", 0, None, None)]


@pytest.mark.parametrize(
    ("url", "mime", "name"),
    [
        ("data:image/png;base64,AAAA", "image/png", None),
        ("data:;base64,AAAA", None, None),
        ("https://host/dir/file%201.mp4?x=1", "video/mp4", "file 1.mp4"),
        ("https://host/", None, None),
        ("s3://bucket/key.wav", "audio/x-wav", "key.wav"),
    ],
)
def test_what_a_file_url_says(url: str, mime: str | None, name: str | None) -> None:
    """The MIME type a data: URL states or an URL's file name implies, and that file name."""
    part = file_part(url, 3)
    assert (part.mime, part.url_name, part.index) == (mime, name, 3)


def test_suggested_names_count_from_the_index_and_keep_short_subtypes() -> None:
    """``output.png``, ``output.1.wav`` (no registered extension), ``.bin`` when unsure."""
    assert file_part("data:image/png;base64,", 0).suggested_name == "output.png"
    assert file_part("data:audio/wav;base64,", 1).suggested_name == "output.1.wav"
    assert file_part("data:application/x-long-subtype;base64,", 2).suggested_name == (
        "output.2.bin"
    )
    assert file_part("data:,hi", 0).suggested_name == "output.txt"
