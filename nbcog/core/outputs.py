"""What an output value is, for display: text, a file (URL, MIME type, size, name), or JSON.

Outputs arrive as Cog puts them on the wire (spec §10): files are ``data:`` URLs, or ``http(s)``
URLs with an upload URL; a ``ConcatenateIterator[str]`` streams tokens of one text. The widget
(each chunk as it streams) and the kernel's display (a finished output, whole) both ask this
module which parts to show, and keep only their rendering: HTML and mime bundles, JSON layout,
and the widget its own download names (``output_0.png``, in its synced state).

The two questions keep the rules each front end had before they shared this module, so that
what the widget and the notebook show does not change:

* ``chunk_part`` (a streamed chunk) trusts the output schema: a string is a file when the
  schema says ``format: uri`` (a ``Path``), text when it says plain ``string`` (so a token that
  starts with ``data:`` stays text), and for untyped outputs a file only if it is a base64
  ``data:`` URL.
* ``output_parts`` (a whole output) goes by the value's shape: any ``data:`` URL is a file, an
  ``http(s)`` URL is one when its file name has a known MIME type; a list is files only if all
  its items are, else one JSON value.
"""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

_BASE64_PROBE = 256
"""How far into a ``data:`` URL ``;base64,`` is looked for (the header is short)."""


@dataclass(frozen=True)
class JsonPart:
    """Any other value (objects, numbers, mixed lists), for the front end to lay out as JSON."""

    value: Any


@dataclass(frozen=True)
class FilePart:
    """A file output: its URL and what the URL says about it.

    Attributes:
        url: the ``data:`` or ``http(s)`` URL (or whatever a ``format: uri`` chunk holds).
        index: its position among the output's chunks (the default names count with it).
        mime: a ``data:`` URL's media type, else the type guessed from the URL's file name;
            None when the URL says nothing (each front end has its default).
        url_name: the last segment of a non-``data:`` URL's path, unquoted; None when empty.
    """

    url: str
    index: int
    mime: str | None
    url_name: str | None

    @property
    def is_data(self) -> bool:
        """The file travels inside its URL (``data:``), not behind it."""
        return self.url.startswith("data:")

    @property
    def size(self) -> int | None:
        """The bytes a ``data:`` URL holds (decoding it: ask only when it is shown); else None."""
        return len(data_url_bytes(self.url)) if self.is_data else None

    @property
    def suggested_name(self) -> str:
        """The URL's file name, else ``output.png``, ``output.1.wav``, ... by index and type."""
        if self.url_name:
            return self.url_name
        suffix = "" if self.index == 0 else f".{self.index}"
        return f"output{suffix}{extension(self.mime or 'text/plain')}"


Part = str | JsonPart | FilePart
"""Text to show as it is (a plain ``str``: a token stream makes one part per token, so text
parts cost no allocation), a file, or a JSON value."""


def data_url_bytes(url: str) -> bytes:
    """The bytes a ``data:`` URL holds: base64, or percent-encoded text."""
    header, _, payload = url.partition(",")
    if header.endswith(";base64"):
        return base64.b64decode(payload)
    return unquote(payload).encode()


def extension(mime: str) -> str:
    """``.png`` for ``image/png``; a short alphanumeric subtype (``audio/wav``) as it is."""
    known = mimetypes.guess_extension(mime)
    if known:
        return known
    subtype = mime.rpartition("/")[2]
    return f".{subtype}" if subtype.isalnum() and len(subtype) <= 5 else ".bin"


def file_part(url: str, index: int) -> FilePart:
    """What ``url`` (taken to be a file) says about the file."""
    if url.startswith("data:"):
        mime = url[5:].split(",", 1)[0].split(";", 1)[0]
        return FilePart(url, index, mime or None, None)
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or None
    return FilePart(url, index, mimetypes.guess_type(name)[0] if name else None, name)


def chunk_schema(output_schema: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The schema of one chunk: ``items`` of an array output, else the output schema itself."""
    if not output_schema:
        return {}
    if output_schema.get("type") == "array":
        items: Mapping[str, Any] = output_schema.get("items") or {}
        return items
    return output_schema


def chunk_part(chunk: Any, index: int, item_schema: Mapping[str, Any]) -> Part:
    """How to show one streamed chunk, given ``chunk_schema`` of the output schema."""
    if not isinstance(chunk, str):
        return JsonPart(chunk)
    is_uri = item_schema.get("format") == "uri"
    typed_text = item_schema.get("type") == "string" and not is_uri
    if is_uri or (
        not typed_text and chunk.startswith("data:") and ";base64," in chunk[:_BASE64_PROBE]
    ):
        return file_part(chunk, index)
    return chunk


def _shaped_file(value: str, index: int) -> FilePart | None:
    """``value`` as a file if its shape says so: a ``data:`` URL, or an http(s) URL to a
    file name of a known type (a bare page URL stays text)."""
    if value.startswith("data:"):
        return file_part(value, index)
    if value.startswith(("http://", "https://")):
        part = file_part(value, index)
        return part if part.mime is not None else None
    return None


def _all_files(items: list[Any]) -> list[FilePart]:
    """Each item as a file, or [] as soon as one is not (a list of files shows as files)."""
    files = []
    for index, item in enumerate(items):
        file = _shaped_file(item, index) if isinstance(item, str) else None
        if file is None:
            return []
        files.append(file)
    return files


def output_parts(output: Any, output_schema: Mapping[str, Any] | None = None) -> list[Part]:
    """How to show a whole output; a concatenate iterator's strings become one text."""
    schema = output_schema or {}
    if isinstance(output, list):
        if schema.get("x-cog-array-display") == "concatenate" and all(
            isinstance(item, str) for item in output
        ):
            return ["".join(output)]
        files = _all_files(output)
        if files:
            return list(files)
    if isinstance(output, str):
        file = _shaped_file(output, 0)
        return [file if file is not None else output]
    if output is None:
        return []
    return [JsonPart(output)]
