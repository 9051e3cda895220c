"""What the exported code imports: pinned distributions, local modules, and whether it needs a GPU.

Only the modules the predictor's source imports count (at any depth: ``setup()`` often imports
its framework), not the notebook's whole environment. A module maps to the installed
distributions that provide it (``importlib.metadata.packages_distributions``), pinned to the
version installed here. The standard library, ``cog``/``coglet`` (cog's base image installs
them) and ``nbcog`` are left out. A module that lives in the project's folder instead of an
installed distribution is a local module: it is copied next to the predictor.

GPU rule: ``build.gpu: true`` when an imported distribution is a CUDA build, that is its
version carries a ``+cu…`` local tag or it requires NVIDIA's CUDA wheels (``nvidia-*``), as
PyPI's Linux builds of torch, ``tensorflow[and-cuda]`` and ``jax[cuda]`` do; and, for torch
already imported in this process, when ``torch.version.cuda`` is set.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_PROVIDED = {"cog", "coglet", "nbcog", "__future__"}
_NVIDIA = re.compile(r"^nvidia-[a-z0-9-]+", re.IGNORECASE)


@dataclass(frozen=True)
class Requirement:
    """A pinned distribution, and why a GPU is needed for it (empty when it is not)."""

    name: str
    version: str
    gpu_reason: str = ""

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


def imported_modules(source: str) -> list[str]:
    """Top-level names of the absolute imports anywhere in ``source``, in order of appearance."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found = [node.module]
        else:
            continue
        for name in found:
            top = name.split(".")[0]
            if top not in names:
                names.append(top)
    return names


def local_module_path(name: str, folder: Path) -> Path | None:
    """The file or package directory of module ``name`` when it lives in ``folder``."""
    for candidate in (folder / f"{name}.py", folder / name / "__init__.py"):
        if candidate.is_file():
            return candidate if candidate.name != "__init__.py" else candidate.parent
    return None


def requirements(modules: Iterable[str]) -> tuple[list[Requirement], list[str]]:
    """Pinned distributions for ``modules``, and the modules no installed distribution provides.

    Standard-library modules, cog, coglet and nbcog are in neither list.
    """
    providers = importlib.metadata.packages_distributions()
    pinned: dict[str, Requirement] = {}
    unknown: list[str] = []
    for module in modules:
        if module in _PROVIDED or module in sys.stdlib_module_names:
            continue
        names = providers.get(module)
        if not names:
            unknown.append(module)
            continue
        for name in names:
            distribution = importlib.metadata.distribution(name)
            canonical = distribution.metadata["Name"] or name
            if canonical.lower() in _PROVIDED:
                continue
            pinned.setdefault(
                canonical.lower(),
                Requirement(canonical, distribution.version, _gpu_reason(module, distribution)),
            )
    return sorted(pinned.values(), key=lambda r: r.name.lower()), unknown


def _gpu_reason(module: str, distribution: importlib.metadata.Distribution) -> str:
    name, version = distribution.metadata["Name"], distribution.version
    if "+cu" in version:
        return f"{name} {version} is a CUDA build"
    cuda = [m.group(0) for r in distribution.requires or [] if (m := _NVIDIA.match(r))]
    if cuda:
        return f"{name} {version} requires CUDA wheels ({cuda[0]})"
    torch = sys.modules.get("torch") if module == "torch" else None
    cuda_version = getattr(getattr(torch, "version", None), "cuda", None)
    if cuda_version:
        return f"torch {version} is built with CUDA {cuda_version}"
    return ""
