"""``%cog export`` in a real kernel: a predictor spread over cells becomes a ``predict.py`` that
runs elsewhere; what cannot be written as source is named; ``--force`` rules; ``--check``."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import assert_check_rows_same
from kernelkit import ECHO, ROOT, kernel  # noqa: F401 - the fixture

IMPORTS = """
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
import json
import statistics
from cog import BaseRunner, Input
"""

HELPERS = """
THRESHOLD = 0.05
LABELS = ("negative", "neutral", "positive")
scratch = [THRESHOLD * 2, 3]

def label(score):
    # the VADER convention
    if score >= THRESHOLD:
        return LABELS[2]
    return LABELS[0] if score <= -THRESHOLD else LABELS[1]

print("plotting would go here", statistics.mean(scratch))
"""

PREDICTOR = """
class Predictor(BaseRunner):
    def setup(self) -> None:
        self.analyzer = SentimentIntensityAnalyzer()

    def run(self, text: str = Input(default="I love this")) -> str:
        score = self.analyzer.polarity_scores(text)["compound"]
        return json.dumps({"label": label(score), "score": round(score, 4)})
"""


def define_sentiment(kernel) -> None:  # noqa: F811 - the fixture
    """The predictor across three cells, and a cell that runs a prediction."""
    kernel.ok(IMPORTS)
    kernel.ok(HELPERS)
    kernel.ok(PREDICTOR)
    kernel.ok("result = Predictor(); result.setup(); print(result.run(text='great'))")


def fresh_venv(where: Path, packages: list[str]) -> Path:
    """A virtualenv with only ``packages`` and the cog SDK; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    cog = f"cog=={importlib.metadata.version('cog')}"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", cog, *packages],
        check=True,
        capture_output=True,
    )
    return python


def test_predictor_from_three_cells_runs_in_a_fresh_interpreter(kernel, tmp_path):  # noqa: F811
    """predict.py holds the imports, constant, helper and class it needs (nothing else), and
    runs in a fresh virtualenv with only cog.yaml's packages; cog.yaml pins what it imports."""
    define_sentiment(kernel)
    printed = kernel.ok("%cog export project").text
    assert "exported predict.py:Predictor to project" in printed
    project = tmp_path / "project"
    source = (project / "predict.py").read_text()
    for needed in (
        "from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer",
        "import json",
        "from cog import BaseRunner, Input",
        "THRESHOLD = 0.05",
        'LABELS = ("negative", "neutral", "positive")',
        "    # the VADER convention",
        "class Predictor(BaseRunner):",
    ):
        assert needed in source
    for left_out in ("statistics", "scratch", "plotting", "result", "get_ipython"):
        assert left_out not in source
    assert source.index("THRESHOLD =") < source.index("def label") < source.index("class Pred")
    vader = importlib.metadata.version("vaderSentiment")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    config = (project / "cog.yaml").read_text()
    assert f'  python_version: "{version}"\n' in config
    assert (
        f'  python_packages:\n    - "vaderSentiment=={vader}"\npredict: "predict.py:Predictor"\n'
        in (config)
    )
    assert "gpu" not in config
    assert "cog build" in (project / "README.md").read_text()
    schema = subprocess.run(
        [sys.executable, "-m", "nbcog", "schema", "predict.py:Predictor"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert (project / ".cog" / "openapi_schema.json").read_text() == schema

    python = fresh_venv(tmp_path / "venv", [f"vaderSentiment=={vader}"])
    run = "from predict import Predictor; p = Predictor(); p.setup(); print(p.run(text='great'))"
    ran = subprocess.run(
        [str(python), "-I", "-B", "-c", f"import sys; sys.path.insert(0, ''); {run}"],
        cwd=project,
        env={"PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    in_kernel = kernel.ok("print(result.run(text='great'))")
    assert json.loads(ran.stdout.splitlines()[-1]) == json.loads(in_kernel.stdout.splitlines()[-1])
    assert sorted(p.name for p in project.iterdir()) == [
        ".cog",
        "README.md",
        "cog.yaml",
        "predict.py",
    ]


def test_unexportable_dependencies_are_named(kernel, tmp_path):  # noqa: F811
    """An object built at run time, a lambda in a global and a %run function are each named,
    with what to do; nothing is written."""
    (tmp_path / "tools.py").write_text("def shout(text):\n    return text.upper()\n")
    kernel.ok("%run tools.py")
    kernel.ok(IMPORTS)
    kernel.ok("analyzer = SentimentIntensityAnalyzer()\nclean = lambda text: text.strip()")
    kernel.ok(
        """
        class Predictor(BaseRunner):
            def run(self, text: str = "hi") -> str:
                score = analyzer.polarity_scores(clean(text))["compound"]
                return shout(f"{score}")
        """
    )
    error = kernel.run("%cog export project").usage_error
    assert error is not None
    lines = error.splitlines()
    assert len(lines) == 3, error
    assert lines[0].startswith("cannot export analyzer (Predictor uses it): it is a ")
    assert "SentimentIntensityAnalyzer object built at run time" in lines[0]
    assert "`analyzer = SentimentIntensityAnalyzer()` in In [" in lines[0]
    assert "setup()" in lines[0]
    assert lines[1].startswith("cannot export clean (Predictor uses it): it is a lambda")
    assert "def clean(...)" in lines[1]
    assert lines[2].startswith("cannot export shout (Predictor uses it): it was not defined by")
    assert "%run" in lines[2]
    assert str(tmp_path / "tools.py") in lines[2]
    assert not (tmp_path / "project").exists()
    missing = kernel.run("%cog export project Nope").usage_error
    assert missing is not None
    assert missing.startswith("'Nope' is not defined in this notebook")


def test_force_rules(kernel, tmp_path):  # noqa: F811
    """An empty DIR is used; a non-empty one needs --force, which replaces only the export's
    files; a file as DIR, and a symbolic link out of DIR, are refused and nothing moves."""
    define_sentiment(kernel)
    project = tmp_path / "project"
    project.mkdir()
    kernel.ok("%cog export project Predictor")
    (project / "weights.bin").write_bytes(b"\x00weights")
    (project / "predict.py").write_text("# edited by hand\n")
    refused = kernel.run("%cog export project Predictor").usage_error
    assert refused is not None
    assert refused.startswith("project exists and is not empty: give --force")
    assert (project / "predict.py").read_text() == "# edited by hand\n"
    replaced = kernel.ok("%cog export project Predictor --force").text
    assert "replaced: predict.py, cog.yaml, .cog/openapi_schema.json, README.md" in replaced
    assert "class Predictor" in (project / "predict.py").read_text()
    assert (project / "weights.bin").read_bytes() == b"\x00weights"

    (tmp_path / "a-file").write_text("keep")
    as_file = kernel.run("%cog export a-file").usage_error
    assert as_file == "cannot export into a-file: it is a file, not a directory"
    outside = tmp_path / "outside.py"
    outside.write_text("outside")
    (project / "predict.py").unlink()
    (project / "predict.py").symlink_to(outside)
    linked = kernel.run("%cog export project --force").usage_error
    assert linked is not None
    assert "predict.py is a symbolic link" in linked
    assert outside.read_text() == "outside"
    assert (tmp_path / "a-file").read_text() == "keep"


@pytest.mark.slow
def test_check_from_the_notebook_matches_coglet(kernel, tmp_path):  # noqa: F811
    """--check serves the export with coglet from a fresh virtualenv next to the notebook's
    predictor: same schema, prediction, SSE stream and 422; it says how long it took."""
    kernel.ok(
        """
        from cog import BaseRunner, ConcatenateIterator, Input, streaming
        SEPARATOR = " "

        class Echo(BaseRunner):
            @streaming
            def run(self, text: str, times: int = Input(default=2)) -> ConcatenateIterator[str]:
                for word in (SEPARATOR.join([text] * times)).split():
                    yield word + SEPARATOR
        """
    )
    needs_input = kernel.run("%cog export project Echo --check").usage_error
    assert needs_input is not None
    assert "required inputs without defaults (text): give them with -i text=" in needs_input
    checked = kernel.ok("%cog export project Echo --check -i text=hello", timeout=300).text
    assert "nbcog: checking the project already in project" in checked
    assert_check_rows_same(
        checked,
        [
            "GET /openapi.json",
            "POST /predictions (-i inputs)",
            "POST /predictions (SSE)",
            "POST /predictions (invalid)",
        ],
    )
    assert "same answers; checked in " in checked


def test_modules_from_the_notebooks_folder_are_copied(kernel, tmp_path):  # noqa: F811
    """A module imported from the notebook's folder goes into DIR as a file (and is not pinned);
    an instance being served exports its class; the README names the required inputs; a class
    imported from a file of the notebook's folder exports that file."""
    (tmp_path / "textutils.py").write_text("def shout(text):\n    return text.upper() + '!'\n")
    kernel.ok("from textutils import shout\nfrom cog import BaseRunner")
    kernel.ok(
        """
        class Loud(BaseRunner):
            def run(self, text: str) -> str:
                return shout(text)

        loud = Loud()
        """
    )
    kernel.ok("%cog serve loud --port 0")
    printed = kernel.ok("%cog export project").text
    assert "exported predict.py:Loud to project: predict.py, textutils.py, cog.yaml" in printed
    project = tmp_path / "project"
    assert (project / "textutils.py").read_text() == (tmp_path / "textutils.py").read_text()
    assert "from textutils import shout\n" in (project / "predict.py").read_text()
    assert "python_packages" not in (project / "cog.yaml").read_text()
    readme = (project / "README.md").read_text()
    assert "\ncog predict -i text=... " in readme
    assert """-d '{"input": {"text": "..."}}'\n""" in readme

    kernel.ok("%%writefile predict.py\n" + ECHO)
    kernel.ok("from predict import Predictor")
    printed = kernel.ok("%cog export from-file Predictor").text
    assert "exported predict.py:Predictor to from-file: predict.py, cog.yaml" in printed
    assert (tmp_path / "from-file" / "predict.py").read_text() == (
        tmp_path / "predict.py"
    ).read_text()
