"""Files crossing a prediction's boundary: Path input downloads and file outputs (spec §7, §10).

Both classes live for one prediction. ``InputFiles`` turns URL inputs into local temporary files
before ``predict()`` starts and deletes them when the prediction ends. ``OutputFiles`` turns
each top-level output chunk into its wire value: a data URL, or the URL of an upload.

Uploads run synchronously in the thread that produced the chunk (the worker); coglet runs them
alongside the prediction instead, so its file ``output`` events can arrive out of order.

Import rule: stdlib, ``requests`` and ``nbcog.core`` only; never cog or tornado.
"""

from __future__ import annotations

import contextlib
import http
import io
import itertools
import mimetypes
import os
import shutil
import tempfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import requests

from nbcog.core.encoding import data_url, guess_mime, to_jsonable

__all__ = ["InputDownloadError", "InputFiles", "OutputFiles", "UploadError"]

_UPLOAD_TIMEOUT = 25.0
_DOWNLOAD_TIMEOUT = 10.0
_DOWNLOAD_PIECE = 1 << 20
_FILENAME_MAX_BYTES = 200
# coglet formats statuses with Rust's `http` crate, whose reason phrases differ from
# Python's HTTPStatus for these codes.
_REASONS = {
    413: "Payload Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    418: "I'm a teapot",
}


class UploadError(Exception):
    """An output file could not be uploaded; ``str(exc)`` is the prediction's ``error``."""


class InputDownloadError(Exception):
    """A Path input could not be downloaded; ``str(exc)`` is the prediction's ``error``."""


class OutputFiles:
    """Encodes one prediction's output chunks, inlining or uploading the file ones.

    Args:
        upload_url: where file chunks are PUT (coglet's ``--upload-url``); ``None`` or empty
            inlines them as base64 data URLs instead.
    """

    def __init__(self, upload_url: str | None) -> None:
        if upload_url and not upload_url.endswith("/"):
            upload_url += "/"
        self._upload_url = upload_url or None
        # Names file objects 0.bin, 1.png, ... like coglet; next() on a count is atomic.
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._tmpdir: str | None = None

    def encode_chunk(self, value: Any) -> Any:
        """Return the wire value of one top-level output chunk.

        A path is inlined or uploaded as it is; a file object is first written to
        ``{n}.{ext}`` (``ext`` from its ``name``, else ``bin``) so it has a name to upload
        under. Anything else goes through ``to_jsonable`` (nested files become data URLs).

        Raises:
            UploadError: the upload got a non-2xx answer or no answer at all.
            TypeError: the value is not JSON-serialisable.
        """
        if isinstance(value, os.PathLike):
            path = os.fsdecode(value)
        elif isinstance(value, io.IOBase):
            path = self._write_stream(value)
        else:
            return to_jsonable(value)
        if self._upload_url is None:
            with open(path, "rb") as fh:
                return data_url(fh.read(), guess_mime(path))
        return self._upload(path, self._upload_url)

    def close(self) -> None:
        """Delete the files written for file-object chunks. Safe to call more than once."""
        with self._lock:
            tmpdir, self._tmpdir = self._tmpdir, None
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)

    def _write_stream(self, stream: Any) -> str:
        """Save an ``io.IOBase`` (from its start) under the next ``{n}.{ext}`` name."""
        if stream.seekable():
            stream.seek(0)
        content = stream.read()
        name = getattr(stream, "name", None)
        ext = os.path.splitext(name)[1][1:] if isinstance(name, str) else ""
        path = os.path.join(self._dir(), f"{next(self._counter)}.{ext or 'bin'}")
        with open(path, "wb") as fh:
            fh.write(content.encode() if isinstance(content, str) else content)
        return path

    def _dir(self) -> str:
        with self._lock:
            if self._tmpdir is None:
                self._tmpdir = tempfile.mkdtemp(prefix="nbcog-output-")
            return self._tmpdir

    @staticmethod
    def _upload(path: str, upload_url: str) -> str:
        """PUT the file at ``path`` and return where it now lives, without its query string.

        The body streams from disk. The basename is percent-encoded (coglet sends it raw,
        spec §21 item 9).
        """
        url = upload_url + urllib.parse.quote(os.path.basename(path), safe="")
        headers = {"Content-Type": guess_mime(path)}
        try:
            with open(path, "rb") as body:
                # An empty file object would be sent chunked; many object stores refuse that.
                data = body if os.fstat(body.fileno()).st_size else b""
                response = requests.put(url, data=data, headers=headers, timeout=_UPLOAD_TIMEOUT)
        except requests.RequestException as exc:
            raise UploadError(f"Failed to upload output: upload request failed: {exc}") from exc
        with response:
            if not 200 <= response.status_code < 300:
                status = _status_text(response.status_code)
                raise UploadError(f"Failed to upload output: upload returned status {status}")
            location = response.headers.get("Location") or response.url
        return urllib.parse.urlsplit(location)._replace(query="").geturl()


class InputFiles:
    """Downloads one prediction's URL inputs to temporary files, and deletes them afterwards.

    ``download`` may be called from several threads at once (inputs download in parallel).

    Args:
        stopped: True once the prediction is cancelled; a download then stops between
            pieces instead of fetching the whole file for nothing.
    """

    def __init__(self, stopped: Callable[[], bool] = lambda: False) -> None:
        self._stopped = stopped
        self._paths: list[str] = []
        self._lock = threading.Lock()
        self._closed = False

    def download(self, url: str) -> str:
        """Fetch an ``http(s)://`` or ``data:`` URL into a new temporary file; return its path.

        The file name ends with the URL's decoded basename (``file.<ext>`` for data URIs), as
        cog names it, so predictors that look at the extension keep working.

        Raises:
            InputDownloadError: ``Input validation error: <reason>``.
        """
        try:
            if url.startswith("data:"):
                # urllib decodes data: URLs itself; requests cannot fetch them.
                with urllib.request.urlopen(url) as decoded:  # noqa: S310
                    ext = mimetypes.guess_extension(decoded.headers.get_content_type())
                    return self._save(decoded, "file" + (ext or ""))
            user_agent = os.environ.get("COG_USER_AGENT")
            headers = {"User-Agent": user_agent} if user_agent else {}
            with requests.get(
                url, stream=True, timeout=_DOWNLOAD_TIMEOUT, headers=headers
            ) as response:
                response.raise_for_status()
                response.raw.decode_content = True
                return self._save(response.raw, _url_filename(url))
        except InputDownloadError:
            raise
        except Exception as exc:  # any failure, network or disk, fails the prediction the same way
            raise InputDownloadError(f"Input validation error: {exc}") from exc

    def cleanup(self) -> None:
        """Delete every file ``download`` created, and any a running download still creates.

        Safe to call more than once. An async prediction cancelled mid-download ends (and
        cleans up) while its download thread carries on; that thread deletes its own file.
        """
        with self._lock:
            self._closed = True
            paths, self._paths = self._paths, []
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def _save(self, source: Any, suffix: str) -> str:
        """Copy a readable stream into a kept temporary file ending in ``suffix``."""
        with tempfile.NamedTemporaryFile(suffix=suffix, delete=False) as dest:
            with self._lock:
                kept = not self._closed
                if kept:
                    self._paths.append(dest.name)
            while kept and (piece := source.read(_DOWNLOAD_PIECE)):
                if self._stopped() or self._closed:
                    break
                dest.write(piece)
        if kept and not self._stopped() and not self._closed:
            return dest.name
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dest.name)
        raise InputDownloadError("Input validation error: the prediction was canceled")


def _status_text(code: int) -> str:
    """``500 Internal Server Error``, worded as coglet (Rust's ``http`` crate) words it."""
    reason = _REASONS.get(code)
    if reason is None:
        try:
            reason = http.HTTPStatus(code).phrase
        except ValueError:
            reason = "<unknown status code>"
    return f"{code} {reason}"


def _url_filename(url: str) -> str:
    """The decoded basename of ``url``'s path, made safe as a file-name suffix.

    cog's ``get_filename`` rules: at most 200 UTF-8 bytes (the stem is cut and marked with
    ``~``, the extension kept), and ``/`` or NUL (e.g. from ``%2F``) replaced by ``_``.
    """
    basename = urllib.parse.unquote_plus(os.path.basename(urllib.parse.urlparse(url).path))
    if len(basename.encode()) > _FILENAME_MAX_BYTES:
        stem, ext = os.path.splitext(basename)
        keep = _FILENAME_MAX_BYTES - len(ext.encode()) - 1
        basename = f"{stem.encode()[:keep].decode(errors='ignore')}~{ext}"
    return basename.replace("/", "_").replace("\0", "_")
