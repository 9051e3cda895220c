"""Validated JSON input values to call kwargs, as coglet's ``input.rs`` does (spec §7)."""

from __future__ import annotations

import concurrent.futures
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeGuard

from cog.types import File, Path, Secret

from nbcog.runner.cog_adapter.hints import is_union, non_none_args

Coercion = Literal["secret", "path", "file"]
Download = Callable[[str], str]

_KINDS: dict[Any, Coercion] = {File: "file", Path: "path", Secret: "secret"}
_MAX_DOWNLOADS = 8
_URL_PREFIXES = ("http://", "https://", "data:")


def coercion_kind(annotation: Any) -> Coercion | None:
    """coglet's ``classify_fields``: Secret, Path or File, directly, in a list or a union."""
    candidates = [annotation, *non_none_args(annotation)] if is_union(annotation) else [annotation]
    for candidate in candidates:
        if candidate in _KINDS:
            return _KINDS[candidate]
        element = typing.get_args(candidate)[:1]
        if typing.get_origin(candidate) is list and element and element[0] in (File, Path):
            return _KINDS[element[0]]
    return None


def coerce_inputs(
    coercions: Mapping[str, Coercion], values: Mapping[str, Any], download: Download
) -> dict[str, Any]:
    """``values`` with each input named in ``coercions`` turned into what the handler expects.

    ``Secret`` strings become ``cog.Secret``; ``File`` URLs become ``cog.URLFile`` or
    ``io.BytesIO`` (data URIs); ``Path`` URLs (``http(s)://``, ``data:``, also inside lists)
    are fetched with ``download`` (which returns a local file name), up to 8 at once, and
    become ``cog.Path``. Every other value, other strings included, is unchanged.
    ``download``'s exceptions propagate.
    """
    kwargs = dict(values)
    jobs: list[tuple[str, int | None, str]] = []  # (name, list index, url) of Path downloads

    def open_url(kind: Coercion, name: str, index: int | None, url: str) -> Any:
        """A ``File`` now; a ``Path`` URL is queued and stays a string until downloaded."""
        if kind == "file":
            return File.validate(url)
        jobs.append((name, index, url))
        return url

    for name, kind in coercions.items():
        value = kwargs.get(name)
        if kind == "secret":
            if isinstance(value, str):
                kwargs[name] = Secret(value)
        elif _is_url(value):
            kwargs[name] = open_url(kind, name, None, value)
        elif isinstance(value, list):
            kwargs[name] = [
                open_url(kind, name, index, item) if _is_url(item) else item
                for index, item in enumerate(value)
            ]
    if jobs:
        with concurrent.futures.ThreadPoolExecutor(min(len(jobs), _MAX_DOWNLOADS)) as pool:
            local = list(pool.map(download, [url for _, _, url in jobs]))
        for (name, index, _), filename in zip(jobs, local, strict=True):
            if index is None:
                kwargs[name] = Path(filename)
            else:
                kwargs[name][index] = Path(filename)
    return kwargs


def _is_url(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and value.startswith(_URL_PREFIXES)
