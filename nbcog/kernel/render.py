"""How a prediction's output looks in a notebook: text, images, audio, video, downloadable files.

Outputs arrive as Cog puts them on the wire (spec §10): files are ``data:`` URLs (or, with an
upload URL, ``http(s)`` URLs). ``output_parts`` splits an output into displayable parts, each an
object with ``_repr_mimebundle_``, so Jupyter shows images as images and every part still has a
``text/plain`` form for terminals and logs.
"""

from __future__ import annotations

import base64
import html
import json
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

# Image types a notebook front end renders from a base64 mime bundle entry.
_BUNDLE_IMAGES = ("image/png", "image/jpeg", "image/gif")


@dataclass(frozen=True)
class Text:
    """Plain text output (a string, or JSON shown indented)."""

    text: str

    def _repr_mimebundle_(self, **_: Any) -> dict[str, str]:
        return {"text/plain": self.text}


@dataclass(frozen=True)
class FileOutput:
    """A file output: shown inline when the browser can, else as a download link."""

    url: str
    mime: str
    size: int | None
    name: str

    def describe(self) -> str:
        """``output.png (image/png, 12.3 kB)``."""
        size = "" if self.size is None else f", {_human(self.size)}"
        return f"{self.name} ({self.mime}{size})"

    def _repr_mimebundle_(self, **_: Any) -> dict[str, str]:
        bundle = {"text/plain": f"file: {self.describe()}"}
        src = html.escape(self.url, quote=True)
        if self.mime in _BUNDLE_IMAGES and self.url.startswith("data:"):
            bundle[self.mime] = self.url.split(",", 1)[1]
        elif self.mime == "image/svg+xml" and self.url.startswith("data:"):
            bundle[self.mime] = _decode(self.url).decode(errors="replace")
        elif self.mime.startswith("image/"):
            bundle["text/html"] = f'<img src="{src}" alt="{html.escape(self.name)}"/>'
        elif self.mime.startswith(("audio/", "video/")):
            tag = self.mime.split("/", 1)[0]
            bundle["text/html"] = f'<{tag} controls src="{src}"></{tag}>'
        else:
            bundle["text/html"] = (
                f'<a download="{html.escape(self.name, quote=True)}" href="{src}">'
                f"{html.escape(self.describe())}</a>"
            )
        return bundle


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB"):
        if value < 1000:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def _decode(url: str) -> bytes:
    header, _, payload = url.partition(",")
    if header.endswith(";base64"):
        return base64.b64decode(payload)
    return unquote(payload).encode()


def _extension(mime: str) -> str:
    """``.png`` for ``image/png``; a short alphanumeric subtype (``audio/wav``) as it is."""
    known = mimetypes.guess_extension(mime)
    if known:
        return known
    subtype = mime.rpartition("/")[2]
    return f".{subtype}" if subtype.isalnum() and len(subtype) <= 5 else ".bin"


def _file(value: str, index: int) -> FileOutput | None:
    if value.startswith("data:"):
        header = value[5:].split(",", 1)[0]
        mime = header.split(";", 1)[0] or "text/plain"
        size = len(_decode(value))
        extension = _extension(mime)
        return FileOutput(
            value, mime, size, f"output{'' if index == 0 else f'.{index}'}{extension}"
        )
    if value.startswith(("http://", "https://")):
        name = unquote(urlsplit(value).path.rsplit("/", 1)[-1])
        guessed = mimetypes.guess_type(name)[0] if name else None
        if guessed is not None:
            return FileOutput(value, guessed, None, name)
    return None


def output_parts(output: Any, output_schema: Mapping[str, Any] | None = None) -> list[Any]:
    """Displayable parts of ``output``; a concatenate iterator's strings become one text."""
    schema = output_schema or {}
    if isinstance(output, list):
        if schema.get("x-cog-array-display") == "concatenate" and all(
            isinstance(item, str) for item in output
        ):
            return [Text("".join(output))]
        if output and all(isinstance(item, str) and _file(item, 0) is not None for item in output):
            return [_file(item, index) for index, item in enumerate(output)]
    if isinstance(output, str):
        file = _file(output, 0)
        return [file if file is not None else Text(output)]
    if output is None:
        return []
    return [Text(json.dumps(output, indent=2, sort_keys=True, ensure_ascii=False))]
