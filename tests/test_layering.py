"""Import boundaries (Bokeh style): each layer is imported in a fresh interpreter and the
modules it must not pull in are looked for in ``sys.modules``."""

from __future__ import annotations

import subprocess
import sys

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
    # imports by tests/test_widget_view.py; here: no tornado, and http/widget stay peers.
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
