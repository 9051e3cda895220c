"""Inputs over HTTP (spec §7): validation, 422 details, defaults, Secret, Path and File.

Every test talks to a real nbcog server. The 422 bodies asserted here are byte-for-byte what
coglet 0.23.1 answered for the same predictor and the same requests (checked live).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from http_peer import Peer, serve_peer

# Each parameter reports the Python type and value predict() received.
TYPES = """
from typing import Optional
from cog import BaseRunner, Input

class Predictor(BaseRunner):
    def run(
        self,
        zeta: str,
        alpha: int,
        maybe: Optional[str],
        pep: str | None,
        count: int = Input(default=2, ge=0, le=10),
        ratio: float = 0.5,
        flag: bool = False,
        color: str = Input(default="red", choices=["red", "green"]),
        size: int = Input(default=1, choices=[1, 2]),
        word: str = Input(default="abc", min_length=2, max_length=5, regex="^[a-z]+$"),
        code: str = Input(default="a1", regex="[0-9]"),
        nums: list[int] = Input(default=[1, 2]),
        opt_default: Optional[int] = Input(default=7),
    ) -> dict:
        return {k: [type(v).__name__, v] for k, v in locals().items() if k != "self"}
"""

REQUIRED = {"zeta": "z", "alpha": 1}

DEFAULTS = {
    "zeta": ["str", "z"],
    "alpha": ["int", 1],
    "maybe": ["NoneType", None],
    "pep": ["NoneType", None],
    "count": ["int", 2],
    "ratio": ["float", 0.5],
    "flag": ["bool", False],
    "color": ["str", "red"],
    "size": ["int", 1],
    "word": ["str", "abc"],
    "code": ["str", "a1"],
    "nums": ["list", [1, 2]],
    "opt_default": ["int", 7],
}

# Reports what the Secret, Path and File parameters became.
FILES = """
import io, os
from typing import Optional
from cog import BaseRunner, File, Input, Path, Secret

def kind(value):
    return type(value).__module__ + "." + type(value).__qualname__

class Predictor(BaseRunner):
    def run(
        self,
        p: Optional[Path] = None,
        f: Optional[File] = None,
        s: Secret = Input(default=None),
        maybe_s: Optional[Secret] = None,
        secrets: list[Secret] = Input(default=[]),
        ps: list[Path] = Input(default=[]),
    ) -> dict:
        print("predict called")
        out = {"s": kind(s), "maybe_s": kind(maybe_s), "secrets": [kind(x) for x in secrets]}
        if isinstance(s, Secret):
            out["s_text"] = [str(s), s.get_secret_value()]
        if isinstance(maybe_s, Secret):
            out["maybe_s_text"] = maybe_s.get_secret_value()
        if p is not None:
            out["p"] = kind(p)
            out["p_path"] = str(p)
            if isinstance(p, os.PathLike):
                out["p_bytes"] = p.read_bytes().decode("latin-1")
        if f is not None:
            out["f"] = kind(f)
            out["f_bytes"] = f.read().decode() if isinstance(f, io.IOBase) else f
        out["ps"] = [
            [kind(x), str(x), x.read_text() if isinstance(x, os.PathLike) else x] for x in ps
        ]
        return out
"""

# Holds the prediction open until the test creates the gate file, so PUT can attach to it.
GATED = """
import os, time
from typing import Optional
from cog import BaseRunner, Input, Secret

class Predictor(BaseRunner):
    def run(
        self,
        gate: str,
        token: Secret,
        maybe: Optional[str],
        hidden: Optional[Secret] = None,
        n: int = 1,
        names: list[str] = Input(default=["x"]),
    ) -> str:
        print("waiting")
        deadline = time.monotonic() + 60
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.005)
        return f"{type(token).__name__}:{token.get_secret_value()}"
"""

PNG = b"\x89PNG\r\n\x1a\nfake"


@pytest.fixture
def peer() -> Iterator[Peer]:
    """A local HTTP host serving the files that URL inputs point at."""
    with serve_peer() as running:
        yield running


def predict(url: str, inputs: Any) -> requests.Response:
    """A sync prediction with ``inputs`` as the body's ``input``."""
    return requests.post(url + "/predictions", json={"input": inputs}, timeout=60)


def output(url: str, inputs: Any) -> Any:
    """The output of a prediction that must succeed."""
    response = predict(url, inputs)
    body = response.json()
    assert (response.status_code, body["status"]) == (200, "succeeded"), body
    return body["output"]


def detail(url: str, inputs: Any) -> list[dict[str, Any]]:
    """The ``detail`` list of a create that must be refused with 422 JSON."""
    response = predict(url, inputs)
    assert response.status_code == 422, response.text
    assert response.headers["Content-Type"] == "application/json"
    return response.json()["detail"]


def err(field: str, msg: str) -> dict[str, Any]:
    """One ``value_error`` entry of a 422 ``detail``."""
    return {"loc": ["body", "input", field], "msg": msg, "type": "value_error"}


def missing(field: str) -> dict[str, Any]:
    """The ``detail`` entry for a missing required field."""
    return {"loc": ["body", "input", field], "msg": "Field required", "type": "value_error.missing"}


# --- types, defaults, required --------------------------------------------------------------


def test_omitted_inputs_get_the_python_defaults(serve_source):
    """Omitted inputs reach predict() as their Python defaults; bare Optionals as None."""
    with serve_source(TYPES) as s:
        assert output(s.url, REQUIRED) == DEFAULTS


def test_given_inputs_arrive_with_their_json_types(serve_source):
    """Given values reach predict() unchanged: 3.0 for an int stays float, 1 for a float int."""
    given = {
        **REQUIRED,
        "maybe": "m",
        "pep": "p",
        "count": 3.0,
        "ratio": 1,
        "flag": True,
        "color": "green",
        "size": 2,
        "word": "hello",
        "code": "x9y",
        "nums": [],
        "opt_default": 0,
    }
    with serve_source(TYPES) as s:
        received = output(s.url, given)
    assert received == {key: [type(value).__name__, value] for key, value in given.items()}
    assert received["count"] == ["float", 3.0]
    assert received["ratio"] == ["int", 1]


def test_missing_required_fields_follow_signature_order(serve_source):
    """Missing required fields are listed in the schema's required order, not alphabetically."""
    with serve_source(TYPES) as s:
        assert detail(s.url, {}) == [missing("zeta"), missing("alpha")]
        assert detail(s.url, {"alpha": 1}) == [missing("zeta")]


def test_no_numeric_or_string_coercion(serve_source):
    """Strings are not numbers, booleans are not integers, 3.5 is not an integer: all 422."""
    cases = [
        ("count", "3", '"3" is not of type "integer"'),
        ("count", 3.5, '3.5 is not of type "integer"'),
        ("alpha", True, 'true is not of type "integer"'),
        ("ratio", "1.5", '"1.5" is not of type "number"'),
        ("flag", 1, '1 is not of type "boolean"'),
        ("zeta", 3, '3 is not of type "string"'),
    ]
    with serve_source(TYPES) as s:
        for field, value, msg in cases:
            assert detail(s.url, {**REQUIRED, field: value}) == [err(field, msg)], (field, value)


def test_explicit_null_is_rejected_even_when_optional(serve_source):
    """An explicit null fails the type check for Optional, PEP 604 and required fields alike."""
    with serve_source(TYPES) as s:
        assert detail(s.url, {**REQUIRED, "maybe": None}) == [
            err("maybe", 'null is not of type "string"')
        ]
        assert detail(s.url, {**REQUIRED, "pep": None}) == [
            err("pep", 'null is not of type "string"')
        ]
        assert detail(s.url, {**REQUIRED, "opt_default": None}) == [
            err("opt_default", 'null is not of type "integer"')
        ]
        assert detail(s.url, {"zeta": None, "alpha": 1}) == [
            err("zeta", 'null is not of type "string"')
        ]


# --- constraints ------------------------------------------------------------------------------


def test_choices_accept_only_listed_values(serve_source):
    """choices= rejects other values; a wrong type also fails the type check, enum first."""
    with serve_source(TYPES) as s:
        assert detail(s.url, {**REQUIRED, "color": "blue"}) == [
            err("color", '"blue" is not one of ["red","green"]')
        ]
        assert detail(s.url, {**REQUIRED, "color": 5}) == [
            err("color", '5 is not one of ["red","green"]'),
            err("color", '5 is not of type "string"'),
        ]
        assert detail(s.url, {**REQUIRED, "size": 3}) == [err("size", "3 is not one of [1,2]")]
        assert detail(s.url, {**REQUIRED, "size": "1"}) == [
            err("size", '"1" is not one of [1,2]'),
            err("size", '"1" is not of type "integer"'),
        ]
        assert output(s.url, {**REQUIRED, "size": 2.0})["size"] == ["float", 2.0]


def test_ge_and_le_bounds(serve_source):
    """ge/le are inclusive minimum/maximum with coglet's messages."""
    with serve_source(TYPES) as s:
        assert detail(s.url, {**REQUIRED, "count": 11}) == [
            err("count", "11 is greater than the maximum of 10")
        ]
        assert detail(s.url, {**REQUIRED, "count": -1}) == [
            err("count", "-1 is less than the minimum of 0")
        ]
        assert output(s.url, {**REQUIRED, "count": 10})["count"] == ["int", 10]
        assert output(s.url, {**REQUIRED, "count": 0})["count"] == ["int", 0]


def test_length_limits_and_regex(serve_source):
    """min_length/max_length count code points; regex is an unanchored search."""
    with serve_source(TYPES) as s:
        assert detail(s.url, {**REQUIRED, "word": "a"}) == [
            err("word", '"a" is shorter than 2 characters')
        ]
        assert detail(s.url, {**REQUIRED, "word": "TOOLONGX"}) == [
            err("word", '"TOOLONGX" is longer than 5 characters'),
            err("word", '"TOOLONGX" does not match "^[a-z]+$"'),
        ]
        assert detail(s.url, {**REQUIRED, "word": "ab1"}) == [
            err("word", '"ab1" does not match "^[a-z]+$"')
        ]
        # Five accented letters are five characters (ten UTF-8 bytes): only the pattern fails.
        assert detail(s.url, {**REQUIRED, "word": "ééééé"}) == [
            err("word", '"ééééé" does not match "^[a-z]+$"')
        ]
        assert detail(s.url, {**REQUIRED, "code": "abc"}) == [
            err("code", '"abc" does not match "[0-9]"')
        ]
        assert output(s.url, {**REQUIRED, "code": "x9y"})["code"] == ["str", "x9y"]


def test_list_items_are_checked_one_by_one(serve_source):
    """Each bad list element gets its own error at 'field/index'; a non-list fails as a whole."""
    with serve_source(TYPES) as s:
        assert detail(s.url, {**REQUIRED, "nums": ["x", 2, "y"]}) == [
            err("nums/0", '"x" is not of type "integer"'),
            err("nums/2", '"y" is not of type "integer"'),
        ]
        assert detail(s.url, {**REQUIRED, "nums": "notalist"}) == [
            err("nums", '"notalist" is not of type "array"')
        ]
        assert output(s.url, {**REQUIRED, "nums": [5, 6, 7]})["nums"] == ["list", [5, 6, 7]]


def test_several_errors_come_sorted_by_field_then_missing(serve_source):
    """Every error is listed: field errors by field name, then missing fields in required order."""
    with serve_source(TYPES) as s:
        response = predict(s.url, {"word": "A", "count": 11, "color": "blue", "junk": None})
    assert response.status_code == 422
    assert response.content == (
        b'{"detail":['
        b'{"loc":["body","input","color"],"msg":"\\"blue\\" is not one of [\\"red\\",\\"green\\"]",'
        b'"type":"value_error"},'
        b'{"loc":["body","input","count"],"msg":"11 is greater than the maximum of 10",'
        b'"type":"value_error"},'
        b'{"loc":["body","input","word"],"msg":"\\"A\\" is shorter than 2 characters",'
        b'"type":"value_error"},'
        b'{"loc":["body","input","word"],"msg":"\\"A\\" does not match \\"^[a-z]+$\\"",'
        b'"type":"value_error"},'
        b'{"loc":["body","input","zeta"],"msg":"Field required","type":"value_error.missing"},'
        b'{"loc":["body","input","alpha"],"msg":"Field required","type":"value_error.missing"}'
        b"]}"
    )


def test_unknown_keys_are_dropped_not_validated(serve_source):
    """Unknown input keys are neither validated nor passed to predict() (no TypeError)."""
    with serve_source(TYPES) as s:
        received = output(s.url, {**REQUIRED, "junk": None, "other": {"a": [1]}})
    assert received == DEFAULTS


def test_put_attach_echoes_validated_input_with_secrets_masked(serve_source, tmp_path):
    """PUT attach echoes the validated input: junk dropped, Nones added, secrets masked."""
    gate = tmp_path / "gate"
    with serve_source(GATED) as s:
        created = requests.put(
            s.url + "/predictions/att",
            json={
                "input": {
                    "gate": str(gate),
                    "token": "hunter2",
                    "hidden": "s3cret",
                    "names": ["a"],
                    "junk": 5,
                }
            },
            headers={"Prefer": "respond-async"},
            timeout=30,
        )
        assert created.status_code == 202
        attached = requests.put(
            s.url + "/predictions/att", json={"input": {"gate": "ignored"}}, timeout=30
        )
        assert attached.status_code == 202
        echoed = attached.json()["input"]
        gate.touch()
    assert echoed == {
        "gate": str(gate),
        "token": "**********",
        "hidden": "**********",
        "maybe": None,
        "names": ["a"],
    }
    assert "hunter2" not in attached.text
    assert "s3cret" not in attached.text


# --- Secret -----------------------------------------------------------------------------------


def test_secret_strings_become_cog_secrets(serve_source):
    """Secret and Optional[Secret] strings arrive as cog.Secret; list[Secret] items stay str."""
    with serve_source(FILES) as s:
        received = output(s.url, {"s": "hunter2", "maybe_s": "m2", "secrets": ["a"]})
        omitted = output(s.url, {})
    assert received["s"] == "cog.types.Secret"
    assert received["s_text"] == ["**********", "hunter2"]
    assert received["maybe_s"] == "cog.types.Secret"
    assert received["maybe_s_text"] == "m2"
    assert received["secrets"] == ["builtins.str"]
    assert (omitted["s"], omitted["maybe_s"]) == ("builtins.NoneType", "builtins.NoneType")


# --- Path and File ----------------------------------------------------------------------------


def test_path_from_http_url_is_a_temp_file_deleted_afterwards(serve_source, peer):
    """An http URL Path is a temp file named after the decoded basename, deleted afterwards."""
    peer.route("/img/epic%20one.png", body=PNG, **{"Content-Type": "image/png"})
    with serve_source(FILES) as s:
        received = output(s.url, {"p": peer.url + "/img/epic%20one.png"})
        assert peer.received("GET")[0].path == "/img/epic%20one.png"
    assert received["p"] == "cog.types.Path"
    assert received["p_path"].endswith("epic one.png")
    assert received["p_bytes"] == PNG.decode("latin-1")
    assert not os.path.exists(received["p_path"])


def test_path_from_data_uri_gets_a_suffix_from_its_mime_type(serve_source):
    """A data URI Path is a temp file ending in file.<ext from MIME>, deleted afterwards."""
    uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
    with serve_source(FILES) as s:
        received = output(s.url, {"p": uri})
        plain = output(s.url, {"p": "data:text/plain,hi%20there"})
    assert received["p"] == "cog.types.Path"
    assert Path(received["p_path"]).name.endswith("file.png")
    assert received["p_bytes"] == PNG.decode("latin-1")
    assert Path(plain["p_path"]).name.endswith("file.txt")
    assert plain["p_bytes"] == "hi there"
    assert not os.path.exists(received["p_path"])
    assert not os.path.exists(plain["p_path"])


def test_path_non_url_strings_arrive_as_str(serve_source):
    """A Path input that is not an http(s)/data URL arrives as a plain str, even a local path."""
    with serve_source(FILES) as s:
        assert output(s.url, {"p": "not a url"})["p"] == "builtins.str"
        received = output(s.url, {"p": "/etc/hostname"})
    assert (received["p"], received["p_path"]) == ("builtins.str", "/etc/hostname")


def test_list_of_paths_downloads_urls_and_keeps_strings(serve_source, peer):
    """list[Path] downloads each URL element and leaves other strings alone."""
    peer.route("/notes.txt", body=b"hello notes")
    with serve_source(FILES) as s:
        received = output(s.url, {"ps": [peer.url + "/notes.txt", "data:,inline", "plain"]})
    (first, second, third) = received["ps"]
    assert first[0] == "cog.types.Path"
    assert first[1].endswith("notes.txt")
    assert first[2] == "hello notes"
    assert second[0] == "cog.types.Path"
    assert second[2] == "inline"
    assert third == ["builtins.str", "plain", "plain"]
    assert not os.path.exists(first[1])
    assert not os.path.exists(second[1])


def test_file_http_url_is_a_urlfile_and_data_uri_a_bytesio(serve_source, peer):
    """File inputs: an http(s) URL becomes a cog.URLFile and a data URI an io.BytesIO."""
    peer.route("/notes.txt", body=b"hello notes", **{"Content-Type": "text/plain"})
    inline = "data:text/plain;base64," + base64.b64encode(b"inline").decode()
    with serve_source(FILES) as s:
        remote = output(s.url, {"f": peer.url + "/notes.txt"})
        data = output(s.url, {"f": inline})
    assert (remote["f"], remote["f_bytes"]) == ("cog.types.URLFile", "hello notes")
    assert (data["f"], data["f_bytes"]) == ("_io.BytesIO", "inline")


def test_failed_download_fails_the_prediction_before_predict(serve_source, peer):
    """A 404 download fails the prediction with 'Input validation error: ...' before predict()."""
    with serve_source(FILES) as s:
        response = predict(s.url, {"p": peer.url + "/missing.png"})
        assert response.status_code == 200
        body = response.json()
        # The server is unharmed: the next prediction runs.
        assert output(s.url, {})["ps"] == []
    assert body["status"] == "failed"
    assert body["error"] == (
        f"Input validation error: 404 Client Error: Not Found for url: {peer.url}/missing.png"
    )
    assert body["logs"] == ""
    assert "output" not in body
