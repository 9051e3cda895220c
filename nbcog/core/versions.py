"""Version facts for ``GET /``, the health-check and the OpenAPI document (spec §3, §4).

In core because both the service (health-check body) and http (``GET /``) report them; the
installed versions are read from package metadata once, on first use.
"""

from __future__ import annotations

import functools
import platform
from importlib.metadata import PackageNotFoundError, version

from nbcog._version import __version__


def _installed(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


@functools.cache
def versions() -> dict[str, str]:
    """The health-check ``version`` object: coglet's keys, plus ``nbcog``."""
    return {
        "coglet": _installed("coglet"),
        "python_sdk": _installed("cog"),
        "python": platform.python_version(),
        # From the package itself: a source checkout (no installed metadata) knows it too.
        "nbcog": __version__,
    }
