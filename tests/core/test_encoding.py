"""Output chunk encoding (spec §10 "Encoding a chunk"): nbcog.core.encoding."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import enum
import io
import json

import cog
import numpy as np  # in the test extra, so the numpy test never skips
import pydantic
import pytest

from nbcog.core.encoding import data_url, guess_mime, is_file_chunk, to_jsonable
from nbcog.core.jsonenc import JSONSafeStr, dumps_spliced


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1


class Result(cog.BaseModel):
    text: str
    score: float
    image: cog.Path


class Report(pydantic.BaseModel):
    color: Color
    when: datetime.datetime
    tags: set[str]


class LegacyModel:
    """Quacks like a pydantic v1 model: only ``dict()``."""

    def dict(self) -> dict[str, object]:
        return {"color": Color.RED, "items": (1, 2)}


def _png(tmp_path) -> cog.Path:
    path = cog.Path(tmp_path / "pic.png")
    path.write_bytes(b"\x89PNG")
    return path


def test_plain_values_pass_through() -> None:
    """str, int, float, bool and None come back unchanged."""
    assert to_jsonable(["a", 1, 2.5, True, None]) == ["a", 1, 2.5, True, None]


def test_cog_base_model_is_encoded_field_by_field(tmp_path) -> None:
    """A cog.BaseModel (a dataclass) becomes a dict, its nested Path a data URL."""
    result = Result(text="hi", score=0.5, image=_png(tmp_path))
    assert to_jsonable(result) == {
        "text": "hi",
        "score": 0.5,
        "image": "data:image/png;base64," + base64.b64encode(b"\x89PNG").decode(),
    }


def test_plain_dataclass_with_open_file_is_encoded(tmp_path) -> None:
    """Dataclass fields are not deep-copied, so an open file inside one still encodes."""

    @dataclasses.dataclass
    class Holder:
        fh: io.BufferedReader

    (tmp_path / "a.txt").write_bytes(b"hi")
    with open(tmp_path / "a.txt", "rb") as fh:
        assert to_jsonable(Holder(fh)) == {"fh": "data:text/plain;base64,aGk="}


def test_pydantic_model_uses_model_dump() -> None:
    """A pydantic model is dumped, then its Enum, datetime and set values are encoded."""
    report = Report(color=Color.BLUE, when=datetime.datetime(2024, 5, 1, 12, 30), tags={"x"})
    assert to_jsonable(report) == {"color": "blue", "when": "2024-05-01T12:30:00", "tags": ["x"]}


def test_pydantic_v1_style_dict_method() -> None:
    """An object with a callable ``dict()`` (pydantic v1) is encoded through it."""
    assert to_jsonable(LegacyModel()) == {"color": "red", "items": [1, 2]}


def test_enum_values() -> None:
    """Enum members become their values, IntEnum as a plain int."""
    assert to_jsonable([Color.RED, Level.LOW]) == ["red", 1]
    assert type(to_jsonable(Level.LOW)) is int


def test_datetime_and_date_use_isoformat() -> None:
    """datetime and date become ISO 8601 strings."""
    tz = datetime.timezone.utc
    assert to_jsonable(datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=tz)) == (
        "2024-01-02T03:04:05+00:00"
    )
    assert to_jsonable(datetime.date(2024, 1, 2)) == "2024-01-02"


def test_numpy_arrays_and_scalars() -> None:
    """numpy arrays become nested lists and numpy scalars plain Python numbers."""
    assert to_jsonable(np.arange(6).reshape(2, 3)) == [[0, 1, 2], [3, 4, 5]]
    encoded = to_jsonable([np.int64(7), np.float32(0.5), np.bool_(True)])
    assert encoded == [7, 0.5, True]
    assert [type(v) for v in encoded] == [int, float, bool]


def test_sets_tuples_and_generators_become_lists() -> None:
    """set, frozenset, tuple and generator values become lists."""
    assert to_jsonable({"s": {1}, "f": frozenset({2}), "t": (3, 4)}) == {
        "s": [1],
        "f": [2],
        "t": [3, 4],
    }
    assert to_jsonable(x * 2 for x in range(3)) == [0, 2, 4]


def test_nested_containers_are_encoded_recursively() -> None:
    """Dicts and lists are walked to any depth."""
    assert to_jsonable({"a": [{"b": (Color.RED,)}]}) == {"a": [{"b": ["red"]}]}


def test_nested_path_becomes_data_url(tmp_path) -> None:
    """A cog.Path inside a value is inlined as a base64 data URL typed by its extension."""
    assert to_jsonable({"files": [_png(tmp_path)]}) == {"files": ["data:image/png;base64,iVBORw=="]}


def test_nested_file_objects_become_data_urls(tmp_path) -> None:
    """File objects inside a value are read from the start; unnamed ones are octet-stream."""
    buffer = io.BytesIO(b"abc")
    buffer.read()
    (tmp_path / "notes.txt").write_bytes(b"hi")
    with open(tmp_path / "notes.txt", "rb") as named:
        assert to_jsonable([buffer, named]) == [
            "data:application/octet-stream;base64,YWJj",
            "data:text/plain;base64,aGk=",
        ]


def test_unencodable_value_raises_json_dumps_type_error() -> None:
    """Anything else raises TypeError with json.dumps's own message."""
    with pytest.raises(TypeError) as info:
        to_jsonable({"x": object()})
    assert str(info.value) == "Object of type object is not JSON serializable"


def test_is_file_chunk() -> None:
    """Paths and file objects are file chunks; strings are not."""
    assert is_file_chunk(cog.Path("/tmp/x.png"))
    assert is_file_chunk(io.BytesIO())
    assert not is_file_chunk("/tmp/x.png")


def test_guess_mime() -> None:
    """MIME types come from the extension, else application/octet-stream."""
    assert guess_mime("/out/pic.png") == "image/png"
    assert guess_mime("weird.zzzunknown") == "application/octet-stream"
    assert guess_mime("noextension") == "application/octet-stream"


def test_data_url() -> None:
    """data_url builds data:{mime};base64,{payload}."""
    assert data_url(b"hi", "text/plain") == "data:text/plain;base64,aGk="


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, (3 << 18) - 1, 3 << 18, (3 << 18) + 1, 2_500_001])
def test_data_url_matches_base64_at_piece_boundaries(size: int) -> None:
    """The piecewise base64 joins with no padding in between, whatever the size."""
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    url = data_url(data, "image/png")
    assert url == "data:image/png;base64," + base64.b64encode(data).decode()
    assert isinstance(url, JSONSafeStr)


def test_data_url_with_an_unusual_mime_type_is_not_marked_json_safe() -> None:
    """A registered MIME type with a quote in it still gives a right (escaped) data URL."""
    url = data_url(b"hi", 'text/x-"odd"')
    assert url == 'data:text/x-"odd";base64,aGk='
    assert type(url) is str
    assert json.loads(dumps_spliced({"output": url})) == {"output": url}
