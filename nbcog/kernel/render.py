"""How a prediction's output looks in a notebook: text, images, audio, video, downloadable files.

Outputs arrive as Cog puts them on the wire (spec §10): files are ``data:`` URLs (or, with an
upload URL, ``http(s)`` URLs). ``output_parts`` splits an output into displayable parts, each an
object with ``_repr_mimebundle_``, so Jupyter shows images as images and every part still has a
``text/plain`` form for terminals and logs.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nbcog.core.outputs import JsonPart, data_url_bytes
from nbcog.core.outputs import output_parts as core_output_parts

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
            bundle[self.mime] = data_url_bytes(self.url).decode(errors="replace")
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


def output_parts(output: Any, output_schema: Mapping[str, Any] | None = None) -> list[Any]:
    """Displayable parts of ``output`` (``nbcog.core.outputs`` decides what each part is).

    JSON is indented with sorted keys; a ``data:`` URL without a media type is ``text/plain``
    (RFC 2397).
    """
    parts: list[Any] = []
    for part in core_output_parts(output, output_schema):
        if isinstance(part, str):
            parts.append(Text(part))
        elif isinstance(part, JsonPart):
            text = json.dumps(part.value, indent=2, sort_keys=True, ensure_ascii=False)
            parts.append(Text(text))
        else:
            mime = part.mime or "text/plain"
            parts.append(FileOutput(part.url, mime, part.size, part.suggested_name))
    return parts
