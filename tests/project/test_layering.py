"""Import boundaries (Bokeh style): each layer is imported in a fresh interpreter and the
modules it must not pull in are looked for in ``sys.modules``. The arrows between our own
packages are read from the source with ``ast`` (nothing imported), and so is module length."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

FORBIDDEN = {
    "nbcog": ["tornado", "ipywidgets", "IPython", "cog", "coglet", "pydantic"],
    "nbcog.core": [
        "tornado",
        "ipywidgets",
        "traitlets",
        "IPython",
        "cog",
        "coglet",
        "pydantic",
        "asyncio",
    ],
    "nbcog.core.prediction": ["tornado", "ipywidgets", "IPython", "cog", "asyncio"],
    "nbcog.core.broadcaster": ["tornado", "ipywidgets", "IPython", "cog", "asyncio"],
    "nbcog.core.validation": ["tornado", "ipywidgets", "IPython", "cog", "asyncio"],
    "nbcog.core.openapi": ["tornado", "ipywidgets", "IPython", "cog", "asyncio"],
    "nbcog.core.encoding": ["tornado", "ipywidgets", "IPython", "cog", "asyncio"],
    "nbcog.core.metrics": ["tornado", "ipywidgets", "IPython", "cog", "asyncio"],
    "nbcog.runner.worker": ["tornado", "ipywidgets", "IPython"],
    "nbcog.runner.runtime": ["tornado", "ipywidgets", "IPython"],
    "nbcog.service": ["tornado", "ipywidgets", "IPython"],
    "nbcog.http.server": ["ipywidgets", "IPython"],
    "nbcog.console": ["tornado", "ipywidgets", "IPython"],
    "nbcog.core.urls": ["tornado", "IPython", "cog", "asyncio"],
    "nbcog.core.snippets": ["tornado", "IPython", "cog", "asyncio"],
    "nbcog.runner.watching": ["tornado", "ipywidgets", "IPython"],
    "nbcog.http.auth": ["ipywidgets", "IPython"],
    "nbcog.http.reloading": ["ipywidgets", "IPython"],
    # nest_asyncio2 patches asyncio process-wide: only a blocking %cog predict may apply it.
    "nbcog.kernel": ["nest_asyncio2"],
    # ipywidgets itself imports IPython, so the widget's own sources are checked for IPython
    # imports by tests/widget/test_view.py; here: no tornado, and http/widget stay peers.
    "nbcog.widget": ["tornado", "nbcog.http", "nbcog.kernel"],
    # The export gets the notebook's namespace and cells passed in: no IPython, no widgets.
    "nbcog.export": ["IPython", "ipywidgets", "nbcog.kernel", "nbcog.widget"],
}


@pytest.mark.parametrize(("module", "forbidden"), sorted(FORBIDDEN.items()))
def test_layer_does_not_import(module, forbidden):
    """Importing the layer leaves the forbidden packages unimported."""
    code = (
        f"import sys, {module}\n"
        f"bad = [m for m in {forbidden!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} imports {out.stdout.strip()}"


# -- import rules between our own packages, read from the source (no import side effects) --

PACKAGE = Path(__file__).resolve().parents[2] / "nbcog"

# Where each module belongs: its first path component under nbcog/ (module files count as
# their own layer). cli.py and __main__.py are the CLI.
LAYER_OF_TOP = {"__main__": "cli"}

# Which of our layers each layer may import (besides itself). "version" is nbcog/_version.py,
# a leaf anyone may read; "root" is nbcog/__init__.py, which nobody inside may import.
MAY_IMPORT = {
    "core": set(),
    "runner": {"core"},
    "service": {"runner", "core"},
    "http": {"service", "core"},
    "widget": {"service", "core"},
    # What `python -m nbcog serve` prints to its terminal: a front end beside http and widget.
    "console": {"service", "core"},
    # The composition root: builds runtime + webhooks + service, and the HTTP server around.
    "assembly": {"http", "service", "runner", "core"},
    # %cog export / nbcog export: the notebook's namespace and cells are passed in; --check
    # serves the nbcog side with nbcog.testing.
    "export": {"testing", "runner", "core"},
    "kernel": {"export", "assembly", "widget", "console", "http", "service", "runner", "core"},
    "cli": {
        "kernel",
        "export",
        "assembly",
        "widget",
        "console",
        "http",
        "service",
        "runner",
        "core",
    },
    "testing": {"assembly", "http", "service", "runner", "core"},
    "root": {"kernel", "assembly", "http"},
    "version": set(),
}

MAX_LINES = 400


def _layer(module: str) -> str:
    """``nbcog.http.app`` -> ``http``; ``nbcog`` -> ``root``; ``nbcog._version`` -> ``version``."""
    parts = module.split(".")
    if parts[0] != "nbcog":
        return ""
    if len(parts) == 1:
        return "root"
    top = parts[1]
    if top == "_version":
        return "version"
    return LAYER_OF_TOP.get(top, top)


def _module_name(path: Path, package: Path = PACKAGE) -> str:
    relative = path.relative_to(package.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _our_imports(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """``(line, module)`` for every import of an nbcog module in ``path`` (lazy ones too)."""
    tree = ast.parse(path.read_text(), str(path))
    package = _module_name(path, root).split(".")
    if path.name != "__init__.py":
        package.pop()
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            if module == "nbcog":  # `from nbcog import x`: x may be a submodule
                found += [(node.lineno, f"nbcog.{alias.name}") for alias in node.names]
                found.append((node.lineno, "nbcog"))
            else:
                found.append((node.lineno, module))
    return [(line, name) for line, name in found if _layer(name)]


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_layer_has_a_rule():
    """Each module of the package belongs to a layer the import rules know."""
    unknown = {
        str(path.relative_to(PACKAGE))
        for path in _sources()
        if _layer(_module_name(path)) not in MAY_IMPORT
    }
    assert not unknown, f"no import rule for {sorted(unknown)}: add its layer to MAY_IMPORT"


def test_imports_between_our_packages_follow_the_layers():
    """No module imports one of our layers its own layer may not (lazy imports included)."""
    bad = []
    for path in _sources():
        own = _layer(_module_name(path))
        for line, name in _our_imports(path):
            target = _layer(name)
            if target == "root" and own != "root":
                bad.append(f"{path.relative_to(PACKAGE)}:{line} imports the package root")
            elif target not in (own, "version") and target not in MAY_IMPORT.get(own, set()):
                bad.append(f"{path.relative_to(PACKAGE)}:{line} ({own}) imports {name}")
    assert not bad, "\n".join(bad)


def test_the_import_rule_sees_a_forbidden_arrow(tmp_path):
    """The AST reader finds relative, lazy and package-root imports (so the rule can fail)."""
    source = tmp_path / "nbcog" / "http" / "probe.py"
    source.parent.mkdir(parents=True)
    source.write_text(
        "from ..runner import worker\n"
        "def later():\n"
        "    import nbcog.kernel.serving\n"
        "    from nbcog import __version__\n"
    )
    found = _our_imports(source, tmp_path / "nbcog")
    assert (1, "nbcog.runner") in found
    assert (3, "nbcog.kernel.serving") in found
    assert (4, "nbcog") in found


def test_no_module_grows_past_the_line_limit():
    """Every module stays under MAX_LINES: split one by job before it gets there."""
    lengths = {
        str(path.relative_to(PACKAGE)): len(path.read_text().splitlines()) for path in _sources()
    }
    too_long = {name: count for name, count in lengths.items() if count > MAX_LINES}
    assert not too_long, f"over {MAX_LINES} lines: {too_long}"


# -- front ends see a prediction only through the service's read-only PredictionRef --

FRONT_ENDS = {"http", "widget", "kernel", "console"}
INTERNAL_NAMES = {"InFlight", "Finished"}  # classes a front end must not name
INTERNAL_ATTRIBUTES = {"broadcaster", "pipe", "job", "finished"}  # nor read on a prediction


def _reaches_inside(path: Path, root: Path = PACKAGE) -> list[str]:
    """What ``path`` reads that belongs inside the service or a runner (``line: name``)."""
    layer = _layer(_module_name(path, root))
    tree = ast.parse(path.read_text(), str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nbcog.service."):
            found.append(f"{node.lineno}: from {node.module}")
        if isinstance(node, ast.Attribute) and node.attr in INTERNAL_ATTRIBUTES:
            internal: str | None = node.attr
        elif isinstance(node, ast.Name) and node.id in INTERNAL_NAMES:
            internal = node.id
        elif isinstance(node, ast.ImportFrom):
            internal = next((a.name for a in node.names if a.name in INTERNAL_NAMES), None)
        else:
            internal = None
        if layer in FRONT_ENDS and internal is not None:
            found.append(f"{node.lineno}: {internal}")
        if (
            layer != "runner"
            and isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and (getattr(node.value, "id", None) or getattr(node.value, "attr", None)) == "runtime"
        ):
            found.append(f"{node.lineno}: runtime.{node.attr}")
    return sorted(found, key=lambda where: int(where.split(":")[0]))


def test_front_ends_use_only_the_prediction_view():
    """No front end names the service's InFlight or its broadcaster, pipe, job or Finished,
    nobody outside the service imports its modules (only ``nbcog.service``), and nobody
    outside the runner reads a runtime's private attributes."""
    bad = [
        f"{path.relative_to(PACKAGE)}:{where}"
        for path in _sources()
        if _layer(_module_name(path)) != "service"
        for where in _reaches_inside(path)
    ]
    assert not bad, "\n".join(bad)


def test_the_view_rule_sees_a_reach_inside(tmp_path):
    """The rule finds each kind of reach (so it can fail)."""
    source = tmp_path / "nbcog" / "widget" / "probe.py"
    source.parent.mkdir(parents=True)
    source.write_text(
        "from nbcog.service.inflight import InFlight\n"
        "def follow(entry, service):\n"
        "    entry.broadcaster.subscribe(print)\n"
        "    service.runtime._train_ref\n"
    )
    found = _reaches_inside(source, tmp_path / "nbcog")
    assert found == [
        "1: from nbcog.service.inflight",
        "1: InFlight",
        "3: broadcaster",
        "4: runtime._train_ref",
    ]
