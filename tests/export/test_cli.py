"""``python -m nbcog export REF DIR`` in real subprocesses: the files it writes, its refusals, and
``--check`` against coglet in a fresh virtualenv (matching, and failing on a difference)."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import assert_check_rows_same

import nbcog

REPO = Path(nbcog.__file__).resolve().parent.parent

PILLOW_PREDICTOR = """
import tempfile

from cog import BaseRunner, Input, Path
from PIL import Image

from palette import rgb


class Predictor(BaseRunner):
    def setup(self) -> None:
        print("palette ready")

    def run(
        self,
        size: int = Input(default=4, ge=1, le=16),
        color: str = Input(default="red", choices=["red", "blue"]),
    ) -> Path:
        image = Image.new("RGB", (size, size), rgb(color))
        image.putpixel((0, 0), (1, 2, 3))
        target = Path(tempfile.mkdtemp()) / "square.png"
        image.save(target)
        return target
"""

STREAMING_PREDICTOR = """
from cog import BaseRunner, ConcatenateIterator, Input, streaming
from PIL import Image, ImageOps

from palette import rgb


class Predictor(BaseRunner):
    @streaming
    def run(
        self, color: str = Input(default="red", choices=["red", "blue"]), size: int = 3
    ) -> ConcatenateIterator[str]:
        image = ImageOps.invert(Image.new("RGB", (size, 1), rgb(color)))
        for pixel in image.getdata():
            yield f"{pixel} "
"""

PALETTE = 'def rgb(name):\n    return {"red": (255, 0, 0), "blue": (0, 0, 255)}[name]\n'


def run_cli(
    args: list[str], cwd: Path, timeout: float = 300, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m nbcog ARGS`` from ``cwd`` with this repository (and ``extra_env``'s
    ``PYTHONPATH``) importable."""
    extra = dict(extra_env or {})
    env = {k: v for k, v in os.environ.items() if not k.startswith("COG_")}
    paths = [str(REPO), extra.pop("PYTHONPATH", None), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    env.update(extra)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "nbcog", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def project_with(tmp_path: Path, source: str) -> Path:
    """A folder with predict.py (``source``) and the local module it imports."""
    folder = tmp_path / "src"
    folder.mkdir(parents=True)
    (folder / "predict.py").write_text(source)
    (folder / "palette.py").write_text(PALETTE)
    (folder / "notes.txt").write_text("not part of the model")
    return folder


def test_export_copies_the_file_and_its_local_modules(tmp_path):
    """The file and the local module it imports from its folder are copied to the project's
    top; cog.yaml pins Pillow (not cog); the schema is what `nbcog schema` prints; nothing
    else is written."""
    folder = project_with(tmp_path, PILLOW_PREDICTOR)
    done = run_cli(["export", "src/predict.py:Predictor", "out"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("nbcog: exported predict.py:Predictor to out: ")
    out = tmp_path / "out"
    assert (out / "predict.py").read_text() == PILLOW_PREDICTOR
    assert (out / "palette.py").read_text() == PALETTE
    pillow = importlib.metadata.distribution("pillow")
    config = (out / "cog.yaml").read_text()
    assert f'    - "{pillow.metadata["Name"]}=={pillow.version}"\n' in config
    assert "cog==" not in config
    assert config.endswith('predict: "predict.py:Predictor"\n')
    schema = run_cli(["schema", "predict.py:Predictor"], cwd=folder)
    assert (out / ".cog" / "openapi_schema.json").read_text() == schema.stdout
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == [
        ".cog/openapi_schema.json",
        "README.md",
        "cog.yaml",
        "palette.py",
        "predict.py",
    ]
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", "palette.py", "predict.py"]


def test_export_writes_train_and_concurrency(tmp_path):
    """--train goes into cog.yaml's train:, @concurrent(max=N) into concurrency.max."""
    (tmp_path / "predict.py").write_text(
        "from cog import BaseRunner, concurrent\n\n"
        "class Predictor(BaseRunner):\n"
        "    @concurrent(max=3)\n"
        "    async def run(self, text: str = 'x') -> str:\n"
        "        return text\n"
    )
    (tmp_path / "train.py").write_text("def train(steps: int = 1) -> str:\n    return 'ok'\n")
    done = run_cli(["export", "predict.py:Predictor", "out", "--train", "train.py:train"], tmp_path)
    assert done.returncode == 0, done.stderr
    config = (tmp_path / "out" / "cog.yaml").read_text()
    assert 'predict: "predict.py:Predictor"\ntrain: "train.py:train"\n' in config
    assert config.endswith("concurrency:\n  max: 3\n")
    assert (tmp_path / "out" / "train.py").is_file()
    assert "concurrency.max: 3" in done.stdout


def test_export_refusals_are_one_clear_line(tmp_path):
    """A non-empty DIR without --force, and a ref that does not load, exit 1 with one line."""
    folder = project_with(tmp_path, PILLOW_PREDICTOR)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    busy = run_cli(["export", "predict.py:Predictor", "../out"], cwd=folder)
    assert busy.returncode == 1
    assert busy.stderr == (
        "nbcog: ../out exists and is not empty: give --force to replace the exported files in it"
        " (other files stay), or choose a new directory\n"
    )
    broken = run_cli(["export", "predict.py:Nope", "../new"], cwd=folder)
    assert broken.returncode == 1
    assert broken.stderr.startswith("nbcog: cannot load predict.py:Nope: AttributeError: ")
    assert broken.stderr.count("\n") == 1
    assert not (tmp_path / "new").exists()
    forced = run_cli(["export", "predict.py:Predictor", "../out", "--force"], cwd=folder)
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


@pytest.mark.slow
def test_check_matches_with_a_real_dependency(tmp_path):
    """--check: coglet in a fresh virtualenv (cog + Pillow) answers like nbcog: schema,
    a default prediction (a PNG), a -i prediction and its SSE stream, a 422; exit 0."""
    folder = project_with(tmp_path, STREAMING_PREDICTOR)
    done = run_cli(["export", "predict.py:Predictor", "../out", "--check"], cwd=folder)
    assert done.returncode == 0, done.stdout + done.stderr
    table = done.stdout
    assert_check_rows_same(
        table,
        [
            "GET /openapi.json",
            "POST /predictions (defaults)",
            "POST /predictions (SSE)",
            "POST /predictions (invalid)",
        ],
    )
    assert "200, 5 events, succeeded" in table
    assert "same answers; checked in " in table
    pillow = importlib.metadata.distribution("pillow")
    assert f"(cog=={importlib.metadata.version('cog')}, {pillow.metadata['Name']}==" in table
    png = project_with(tmp_path / "png", PILLOW_PREDICTOR)
    inputs = ["-i", "size=5", "-i", "color=blue"]
    done = run_cli(["export", "predict.py:Predictor", "../out", "--check", *inputs], cwd=png)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "POST /predictions (-i inputs)" in done.stdout
    assert "(SSE)" not in done.stdout


@pytest.mark.slow
def test_check_fails_on_an_edited_predictor_with_a_readable_diff(tmp_path):
    """An export whose predict.py was edited by hand answers differently: --check (which
    checks DIR as it is) prints which fields differ, nbcog's value and coglet's, and exits 1."""
    folder = project_with(tmp_path, STREAMING_PREDICTOR)
    assert run_cli(["export", "predict.py:Predictor", "../out"], cwd=folder).returncode == 0
    edited = tmp_path / "out" / "predict.py"
    edited.write_text(edited.read_text().replace('yield f"{pixel} "', 'yield f"{pixel}!"'))
    before = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    done = run_cli(["export", "predict.py:Predictor", "../out", "--check"], cwd=folder)
    assert {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()} == before
    assert done.returncode == 1
    assert "nbcog: checking the project already in ../out" in done.stdout
    lines = done.stdout.splitlines()
    assert next(r for r in lines if r.strip().startswith("GET /openapi.json")).endswith("yes")
    assert next(r for r in lines if r.strip().startswith("schema: exported")).endswith("yes")
    assert next(r for r in lines if "(defaults)" in r and "200" in r).endswith("NO")
    assert "POST /predictions (defaults) differs:" in lines
    assert '  body.output[0]: nbcog "(0, 255, 255) " | coglet "(0, 255, 255)!"' in lines
    assert '  events[1].data.chunk: nbcog "(0, 255, 255) " | coglet "(0, 255, 255)!"' in lines
    assert done.stderr.startswith("nbcog: the project in ../out does not answer like the original")


@pytest.mark.slow
def test_check_fails_on_a_wrong_pin(tmp_path):
    """A cog.yaml pinned by hand to a Pillow release that does not exist fails --check with
    pip's own reason, before any server starts."""
    folder = project_with(tmp_path, STREAMING_PREDICTOR)
    assert run_cli(["export", "predict.py:Predictor", "../out"], cwd=folder).returncode == 0
    config = tmp_path / "out" / "cog.yaml"
    pillow = importlib.metadata.version("pillow")
    config.write_text(config.read_text().replace(f"=={pillow}", "==0.0.1"))
    done = run_cli(["export", "predict.py:Predictor", "../out", "--check"], cwd=folder)
    assert done.returncode == 1
    assert "pip could not install cog.yaml's packages" in done.stderr
    assert "==0.0.1" in done.stderr
    assert "starting coglet" not in done.stdout


def fake_distribution(site: Path, name: str, version: str, requires: list[str]) -> None:
    """A real installed distribution on disk (module, METADATA, RECORD), importable from site."""
    (site / name).mkdir(parents=True)
    (site / name / "__init__.py").write_text("DEVICE = 'cpu'\n")
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {requirement}" for requirement in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    (info / "RECORD").write_text(f"{name}/__init__.py,,\n{info.name}/METADATA,,\n")


def test_gpu_rule_and_unpinned_modules(tmp_path):
    """gpu: true (with the reason) for a distribution requiring NVIDIA's CUDA wheels or with a
    +cu version, not for a CPU build; a module no distribution provides is named, not pinned."""
    site = tmp_path / "site"
    fake_distribution(
        site, "gpuframe", "2.1.0", ['nvidia-cuda-runtime-cu12; sys_platform == "linux"']
    )
    fake_distribution(site, "cudabuild", "1.0+cu121", [])
    fake_distribution(site, "cpuframe", "1.0+cpu", ["numpy"])
    (site / "loose.py").write_text("X = 1\n")
    cases = {
        "gpuframe": "gpu: true  # gpuframe 2.1.0 requires CUDA wheels (nvidia-cuda-runtime-cu12)",
        "cudabuild": "gpu: true  # cudabuild 1.0+cu121 is a CUDA build",
        "cpuframe": None,
    }
    for module, expected in cases.items():
        folder = tmp_path / module
        folder.mkdir()
        (folder / "predict.py").write_text(
            f"import {module}\nimport loose\n\n"
            f"def predict(text: str = 'x') -> str:\n    return text + {module}.DEVICE\n"
        )
        env = {"PYTHONPATH": str(site)}
        done = run_cli(["export", "predict.py:predict", "out"], cwd=folder, extra_env=env)
        assert done.returncode == 0, done.stderr
        config = (folder / "out" / "cog.yaml").read_text()
        version = {"gpuframe": "2.1.0", "cudabuild": "1.0+cu121", "cpuframe": "1.0+cpu"}[module]
        assert f'    - "{module}=={version}"\n' in config
        assert "loose" not in config
        if expected is None:
            assert "gpu" not in config
            assert "  gpu: false\n" in done.stdout
        else:
            assert f"  {expected}\n" in config
        assert "  not pinned (no installed distribution provides them): loose\n" in done.stdout
        assert config.endswith('predict: "predict.py:predict"\n')


@pytest.mark.slow
def test_check_fails_when_cog_yaml_lacks_a_package(tmp_path):
    """A package imported in setup() and removed from cog.yaml by hand: coglet's setup fails
    in the fresh virtualenv, and --check says so with coglet's error."""
    (tmp_path / "predict.py").write_text(
        "from cog import BaseRunner\n\n"
        "class Predictor(BaseRunner):\n"
        "    def setup(self) -> None:\n"
        "        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer\n"
        "        self.analyzer = SentimentIntensityAnalyzer()\n\n"
        "    def run(self, text: str = 'fine') -> float:\n"
        "        return self.analyzer.polarity_scores(text)['compound']\n"
    )
    assert run_cli(["export", "predict.py:Predictor", "out"], cwd=tmp_path).returncode == 0
    config = tmp_path / "out" / "cog.yaml"
    vader = importlib.metadata.version("vaderSentiment")
    pinned = f'  python_packages:\n    - "vaderSentiment=={vader}"\n'
    assert pinned in config.read_text()
    config.write_text(config.read_text().replace(pinned, ""))
    done = run_cli(["export", "predict.py:Predictor", "out", "--check"], cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("nbcog: coglet's setup did not succeed (SETUP_FAILED):\n")
    assert "No module named 'vaderSentiment'" in done.stderr


@pytest.mark.slow
def test_check_makes_the_schema_from_the_code_as_cog_build_does(tmp_path):
    """A default changed by hand in the exported predict.py (the schema file left as it was):
    coglet gets the schema made from the code, so the stale file and the new default show."""
    folder = project_with(tmp_path, STREAMING_PREDICTOR)
    assert run_cli(["export", "predict.py:Predictor", "../out"], cwd=folder).returncode == 0
    edited = tmp_path / "out" / "predict.py"
    edited.write_text(edited.read_text().replace("size: int = 3", "size: int = 2"))
    done = run_cli(["export", "predict.py:Predictor", "../out", "--check"], cwd=folder)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert next(r for r in lines if r.strip().startswith("schema: exported")).endswith("NO")
    assert "  components.schemas.Input.properties.size.default: nbcog 3 | coglet 2" in lines
    assert (
        "  document.components.schemas.Input.properties.size.default: nbcog 3 | coglet 2" in lines
    )
    assert next(r for r in lines if "(defaults)" in r and "200" in r).endswith("NO")
