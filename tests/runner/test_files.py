"""Output files (data URLs, uploads) and Path input downloads: nbcog.runner.files."""

from __future__ import annotations

import base64
import io
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import cog
import pytest
from http_peer import Peer, serve_peer

from nbcog.runner.files import InputDownloadError, InputFiles, OutputFiles, UploadError


@pytest.fixture
def peer() -> Iterator[Peer]:
    """A real HTTP server on 127.0.0.1 that accepts any upload and records every request."""
    with serve_peer() as running:
        running.unknown = (200, {}, b"")
        yield running


@pytest.fixture
def outputs() -> Iterator[OutputFiles]:
    """OutputFiles without an upload URL, closed after the test."""
    files = OutputFiles(None)
    yield files
    files.close()


@pytest.fixture
def inputs() -> Iterator[InputFiles]:
    """InputFiles whose downloads are cleaned up after the test."""
    files = InputFiles()
    yield files
    files.cleanup()


def _write(tmp_path, name: str, data: bytes) -> cog.Path:
    path = cog.Path(tmp_path / name)
    path.write_bytes(data)
    return path


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- data URLs -----------------------------------------------------------------------------


def test_path_chunk_becomes_data_url(tmp_path, outputs) -> None:
    """A Path chunk is inlined with the MIME type of its extension."""
    assert outputs.encode_chunk(_write(tmp_path, "a.txt", b"hi")) == "data:text/plain;base64,aGk="


def test_unknown_extension_is_octet_stream(tmp_path, outputs) -> None:
    """An unknown or missing extension gives application/octet-stream."""
    assert outputs.encode_chunk(_write(tmp_path, "a.zzzunknown", b"hi")) == (
        "data:application/octet-stream;base64,aGk="
    )
    assert outputs.encode_chunk(_write(tmp_path, "noext", b"hi")) == (
        "data:application/octet-stream;base64,aGk="
    )


def test_file_object_chunk_is_read_from_start(outputs) -> None:
    """A file-object chunk is inlined from its start; with no name it is octet-stream."""
    buffer = io.BytesIO(b"abc")
    buffer.read()
    assert outputs.encode_chunk(buffer) == "data:application/octet-stream;base64,YWJj"


def test_named_file_object_chunk_takes_its_extension(tmp_path, outputs) -> None:
    """A named file object is saved as {n}.{ext}, so its MIME type follows its extension."""
    _write(tmp_path, "sound.wav", b"RIFF")
    with open(tmp_path / "sound.wav", "rb") as fh:
        assert outputs.encode_chunk(fh).startswith("data:audio/x-wav;base64,")


def test_non_file_chunk_goes_through_to_jsonable(tmp_path, outputs) -> None:
    """Other chunks are encoded by to_jsonable, nested paths included."""
    assert outputs.encode_chunk({"f": _write(tmp_path, "a.txt", b"hi"), "n": (1,)}) == {
        "f": "data:text/plain;base64,aGk=",
        "n": [1],
    }


def test_twenty_megabyte_file_encodes_correctly(tmp_path, outputs) -> None:
    """A 20 MB file becomes a data URL holding exactly its bytes (its speed: bench/, path)."""
    data = os.urandom(20 * 1024 * 1024)
    path = _write(tmp_path, "big.bin", data)
    encoded = outputs.encode_chunk(path)
    prefix = "data:application/octet-stream;base64,"
    assert encoded.startswith(prefix)
    assert base64.b64decode(encoded[len(prefix) :]) == data


def test_close_removes_written_file_objects(tmp_path, monkeypatch) -> None:
    """close() deletes the temporary directory that file-object chunks were written to."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    files = OutputFiles(None)
    files.encode_chunk(io.BytesIO(b"x"))
    [written] = tmp_path.iterdir()
    assert [p.name for p in written.iterdir()] == ["0.bin"]
    files.close()
    files.close()
    assert list(tmp_path.iterdir()) == []


# --- uploads -------------------------------------------------------------------------------


def test_upload_puts_bytes_with_encoded_name_and_mime(tmp_path, peer) -> None:
    """The file is PUT to {upload_url}/{percent-encoded basename} with its MIME type."""
    files = OutputFiles(peer.url + "/up")
    url = files.encode_chunk(_write(tmp_path, "a b?.txt", b"hello"))
    files.close()
    [request] = peer.received()
    assert (request.method, request.path) == ("PUT", "/up/a%20b%3F.txt")
    assert request.body == b"hello"
    assert request.headers["Content-Type"] == "text/plain"
    assert url == peer.url + "/up/a%20b%3F.txt"


def test_upload_url_with_trailing_slash_is_not_doubled(tmp_path, peer) -> None:
    """An upload URL that already ends in / gets no second slash."""
    files = OutputFiles(peer.url + "/up/")
    files.encode_chunk(_write(tmp_path, "x.png", b"p"))
    files.close()
    assert peer.received()[0].path == "/up/x.png"


def test_upload_names_file_objects_by_counter(tmp_path, peer) -> None:
    """File-object chunks are uploaded as 0.bin, 1.wav, ... (extension from their name)."""
    files = OutputFiles(peer.url + "/up")
    _write(tmp_path, "sound.wav", b"RIFF")
    with open(tmp_path / "sound.wav", "rb") as fh:
        files.encode_chunk(io.BytesIO(b"raw"))
        files.encode_chunk(fh)
    files.close()
    assert [(r.path, r.headers["Content-Type"], r.body) for r in peer.received()] == [
        ("/up/0.bin", "application/octet-stream", b"raw"),
        ("/up/1.wav", "audio/x-wav", b"RIFF"),
    ]


def test_upload_returns_location_without_query(tmp_path, peer) -> None:
    """On 2xx the Location header is the chunk's value, its query string removed."""
    peer.routes["/up/a.txt"] = (201, {"Location": "https://cdn.example/a.txt?sig=1"}, b"")
    files = OutputFiles(peer.url + "/up")
    assert files.encode_chunk(_write(tmp_path, "a.txt", b"x")) == "https://cdn.example/a.txt"


def test_upload_follows_redirect_and_strips_query(tmp_path, peer) -> None:
    """A 307 is followed with the body resent; the final URL, minus its query, is returned."""
    peer.routes["/up/a.txt"] = (307, {"Location": "/final/a.txt?sig=abc"}, b"")
    files = OutputFiles(peer.url + "/up")
    assert files.encode_chunk(_write(tmp_path, "a.txt", b"data")) == peer.url + "/final/a.txt"
    assert [(r.path, r.body) for r in peer.received()] == [
        ("/up/a.txt", b"data"),
        ("/final/a.txt?sig=abc", b"data"),
    ]


def test_upload_url_with_query_is_joined_like_coglet(tmp_path, peer) -> None:
    """The name is appended to the raw upload URL, so a query in it swallows the name."""
    files = OutputFiles(peer.url + "/up?token=1")
    assert files.encode_chunk(_write(tmp_path, "a.txt", b"x")) == peer.url + "/up"
    assert peer.received()[0].path == "/up?token=1/a.txt"


def test_upload_of_empty_file_sends_empty_body(tmp_path, peer) -> None:
    """An empty file is sent with Content-Length: 0, not chunked."""
    files = OutputFiles(peer.url + "/up")
    files.encode_chunk(_write(tmp_path, "empty.txt", b""))
    [request] = peer.received()
    assert request.headers["Content-Length"] == "0"
    assert "Transfer-Encoding" not in request.headers


def test_upload_error_status(tmp_path, peer) -> None:
    """A non-2xx answer raises UploadError with coglet's exact message."""
    peer.routes["/up/a.txt"] = (500, {}, b"boom")
    files = OutputFiles(peer.url + "/up")
    with pytest.raises(UploadError) as info:
        files.encode_chunk(_write(tmp_path, "a.txt", b"x"))
    assert str(info.value) == (
        "Failed to upload output: upload returned status 500 Internal Server Error"
    )


def test_upload_error_status_uses_rust_reason_phrase(tmp_path, peer) -> None:
    """Reason phrases are those of Rust's http crate where Python's differ."""
    peer.routes["/up/a.txt"] = (413, {}, b"")
    files = OutputFiles(peer.url + "/up")
    with pytest.raises(UploadError) as info:
        files.encode_chunk(_write(tmp_path, "a.txt", b"x"))
    assert str(info.value).endswith("upload returned status 413 Payload Too Large")


def test_upload_connection_refused(tmp_path) -> None:
    """A network failure raises UploadError naming the request failure."""
    files = OutputFiles(f"http://127.0.0.1:{_refused_port()}/up")
    with pytest.raises(UploadError) as info:
        files.encode_chunk(_write(tmp_path, "a.txt", b"x"))
    assert str(info.value).startswith("Failed to upload output: upload request failed: ")
    assert "Connection refused" in str(info.value)


# --- input downloads -----------------------------------------------------------------------


def test_download_http_url_into_named_temp_file(peer, inputs) -> None:
    """An http URL is saved to a temp file ending in its decoded basename."""
    peer.routes["/files/epic%20one.png"] = (200, {}, b"\x89PNG")
    path = inputs.download(peer.url + "/files/epic%20one.png?x=1")
    name = os.path.basename(path)
    assert name.startswith("tmp")
    assert name.endswith("epic one.png")
    with open(path, "rb") as fh:
        assert fh.read() == b"\x89PNG"


def test_download_sends_cog_user_agent(peer, inputs, monkeypatch) -> None:
    """COG_USER_AGENT, when set, is the download's User-Agent."""
    monkeypatch.setenv("COG_USER_AGENT", "cog-test/1.0")
    inputs.download(peer.url + "/a.txt")
    assert peer.received()[0].headers["User-Agent"] == "cog-test/1.0"


def test_download_data_uri(inputs) -> None:
    """A data URI is decoded into a temp file named file + the MIME type's extension."""
    path = inputs.download("data:image/png;base64," + base64.b64encode(b"\x89PNG").decode())
    assert os.path.basename(path).endswith("file.png")
    with open(path, "rb") as fh:
        assert fh.read() == b"\x89PNG"


def test_download_long_and_slashed_names(peer, inputs) -> None:
    """Basenames are cut to 200 bytes with ~ before the extension; %2F becomes _."""
    long_path = inputs.download(peer.url + "/" + "a" * 250 + ".png")
    cut = "a" * 195 + "~.png"  # 200 bytes
    name = os.path.basename(long_path)
    # tempfile's own part ("tmp" + 8 random [a-z0-9_], which may end in "a") comes first.
    assert name.endswith(cut)
    assert re.fullmatch(r"tmp[a-z0-9_]{8}", name[: -len(cut)]), name
    slashed = inputs.download(peer.url + "/dir/x%2Fy.txt")
    assert os.path.basename(slashed).endswith("x_y.txt")


def test_download_404_raises_input_validation_error(peer, inputs) -> None:
    """A non-2xx download fails with requests' own message behind the input prefix."""
    peer.routes["/missing.png"] = (404, {}, b"")
    with pytest.raises(InputDownloadError) as info:
        inputs.download(peer.url + "/missing.png")
    assert str(info.value) == (
        f"Input validation error: 404 Client Error: Not Found for url: {peer.url}/missing.png"
    )


def test_cleanup_deletes_downloads(peer) -> None:
    """cleanup() removes every file downloaded, from parallel threads too."""
    files = InputFiles()
    with ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(files.download, [f"{peer.url}/{n}.txt" for n in range(16)]))
    assert len(set(paths)) == 16
    assert all(os.path.exists(p) for p in paths)
    files.cleanup()
    files.cleanup()
    assert not any(os.path.exists(p) for p in paths)
