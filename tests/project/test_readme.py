"""The README holds for a newcomer: its links resolve in the repository, its curl lines are real.

A clone has only what the repository holds, so every relative link in README.md,
ARCHITECTURE.md and docs/ must name a file of the repository, and no path may point outside it.
The README's curl lines are the ones ``%cog serve`` prints for the quickstart notebook, on the
port that notebook serves on (tests/project/test_notebooks.py runs them against the README's
example).
CI runs the README's test command through ``.ci/run``, which also fails when the run changed
the work tree.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from kernelkit import Kernel, wait_ready

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCED = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
INLINE_LINK = re.compile(r"\]\(([^)\s]+)")  # the target of [text](target), ![alt](target)
REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
EXTERNAL = ("http://", "https://", "mailto:")


def anchors(text: str) -> set[str]:
    """The ``#fragment`` of each heading, as GitHub makes them (lower case, spaces to hyphens)."""
    headings = re.findall(r"^#+ (.+)$", text, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def prose(path: Path) -> str:
    """A Markdown file without its fenced code blocks (their text is not a link)."""
    return FENCED.sub("", path.read_text())


def curl_commands(text: str) -> list[list[str]]:
    """The ``curl`` commands of a shell snippet, continuations joined, split as a shell does."""
    joined = text.replace("\\\n", " ")
    return [shlex.split(line) for line in joined.splitlines() if line.strip().startswith("curl ")]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_names_a_file_of_the_repository(document):
    """Each relative link (and image) exists inside the repository; each #anchor is a heading."""
    text = prose(document)
    targets = INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)
    for target in targets:
        if target.startswith("#"):
            assert target[1:] in anchors(text), f"{target} (in {document.name}) names no heading"
    relative = [t for t in targets if not t.startswith((*EXTERNAL, "#"))]
    for target in relative:
        resolved = (document.parent / target.split("#", 1)[0]).resolve()
        assert resolved.is_relative_to(ROOT), f"{target} points outside the repository"
        assert resolved.exists(), f"{target} (in {document.name}) does not exist"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_path_points_outside_the_repository(document):
    """No link or quoted path leads out of the repository (a clone has nothing there)."""
    text = prose(document)
    for path in INLINE_LINK.findall(text) + CODE_SPAN.findall(text):
        if path.startswith("../"):
            resolved = (document.parent / path).resolve()
            assert resolved.is_relative_to(ROOT), f"{path} (in {document.name}) is outside"


def test_readme_has_no_placeholder_binder_link():
    """A clickable Binder link names a real repository, never a placeholder owner that 404s."""
    for target in INLINE_LINK.findall(prose(ROOT / "README.md")):
        if "mybinder.org/v2/" in target:
            assert not re.search(r"/v2/gh/(OWNER|YOU|USER|USERNAME)/", target), target


def test_readme_curl_lines_are_what_quickstart_serve_prints(tmp_path):
    """The README's curl lines are, word for word, those `%cog serve` prints in notebook 1."""
    readme = (ROOT / "README.md").read_text()
    snippet = re.search(r"\n```bash\n((?:[^`]*\n)?curl [^`]*)```", readme)
    assert snippet, "no curl lines in the README"
    documented = curl_commands(snippet[1])
    assert len(documented) == 2  # JSON, then SSE

    notebook = nbformat.read(ROOT / "notebooks" / "01-quickstart.ipynb", as_version=4)
    cells = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    serve_at = next(i for i, source in enumerate(cells) if source.startswith("%cog serve"))
    port = re.fullmatch(r"%cog serve Predictor --port (\d+)", cells[serve_at].strip())[1]
    quickstart = f"http://127.0.0.1:{port}"
    assert f"%cog serve Predictor --port {port}\n" in readme  # the README's example: same port

    kernel = Kernel(sys.executable, tmp_path)
    try:
        for source in cells[:serve_at]:
            kernel.ok(source)
        # Port 0, so that this test never collides with a quickstart running elsewhere; the
        # lines are then read with the quickstart's own URL in place of the one they name.
        kernel.ok(cells[serve_at].replace(f"--port {port}", "--port 0"))
        url = kernel.value("__import__('nbcog').kernel.serving.servers()[-1].url")
        assert wait_ready(url)["status"] == "READY"
        printed = kernel.wait_for_update("succeeded")
        kernel.ok("%cog stop")
    finally:
        kernel.shutdown()
    assert curl_commands(printed.replace(url, quickstart)) == documented
    assert documented[0][:2] == ["curl", "-s"]
    assert documented[1][:2] == ["curl", "-sN"]
    assert all(f"{quickstart}/predictions" in command for command in documented)


def _ci_run(tmp_path: Path, test_command: str) -> subprocess.CompletedProcess[str]:
    """``.ci/run`` in a fresh git repository whose ``scripts/test`` is ``test_command``."""
    repo = tmp_path / "clone"
    (repo / ".ci").mkdir(parents=True)
    (repo / "scripts").mkdir()
    shutil.copy(ROOT / ".ci" / "run", repo / ".ci" / "run")
    (repo / "scripts" / "test").write_text(f"#!/usr/bin/env bash\n{test_command}\n")
    (repo / "scripts" / "test").chmod(0o755)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "clone"], cwd=repo, check=True)
    return subprocess.run(
        [str(repo / ".ci" / "run")], cwd=repo, capture_output=True, text=True, check=False
    )


def test_ci_runs_the_readme_test_command_and_fails_on_a_changed_work_tree(tmp_path):
    """.ci/run calls scripts/test, passes when the tree is clean, fails naming what changed."""
    readme = (ROOT / "README.md").read_text()
    assert "\nscripts/test\n" in readme  # the README's test command, which .ci/run calls
    clean = _ci_run(tmp_path / "clean", "echo suite ran")
    assert clean.returncode == 0, clean.stderr
    assert clean.stdout == "suite ran\n"
    dirty = _ci_run(tmp_path / "dirty", "echo suite ran; touch stray.png")
    assert dirty.returncode == 1
    assert dirty.stdout == "suite ran\n"
    assert "?? stray.png" in dirty.stderr
    failing = _ci_run(tmp_path / "failing", "exit 3")
    assert failing.returncode == 3
