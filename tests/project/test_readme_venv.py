"""The README's test command from a fresh virtualenv: the ipykernel-6 kernel tests pass there.

Most people run a project's tests from a virtualenv, where ``venv --system-site-packages``
gives the *base* interpreter's packages (no ``cog`` on a fresh machine). So this makes what a
newcomer has after ``python3 -m venv venv && . venv/bin/activate``: a fresh virtualenv with the
project and its test extra installed (from a copy of this checkout, so the install writes
nothing here), then runs ``scripts/ipykernel6-venv`` from it, with an empty helper cache, and
one ipykernel-6 kernel test with the helper it printed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from freshvenv import make_venv, venv_environ

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("pyproject.toml", "README.md", "nbcog", "scripts", "tests")
KERNEL_TEST = "tests/kernel/test_magics.py::test_python_api_serves_predicts_and_stops[ipykernel6]"
# Every distribution a Python sees, with its version and whether it lives under sys.prefix.
DISTRIBUTIONS = """
import importlib.metadata, json, os, sys
seen = {}
for dist in importlib.metadata.distributions():
    where = os.path.realpath(str(dist.locate_file("")))
    own = where.startswith(os.path.realpath(sys.prefix) + os.sep)
    seen.setdefault(dist.metadata["Name"].lower(), [dist.version, own])
print(json.dumps(seen))
"""


def distributions(python: Path, env: dict[str, str], cwd: Path) -> dict[str, list]:
    """``{name: [version, under its own prefix]}`` for every distribution ``python`` sees."""
    found = subprocess.run(
        [str(python), "-c", DISTRIBUTIONS], env=env, cwd=cwd, check=True, capture_output=True
    )
    return json.loads(found.stdout)


def test_ipykernel6_tests_pass_from_a_fresh_virtualenv(tmp_path):
    """From a fresh venv the ipykernel-6 helper sees exactly its packages, and its test passes."""
    source = tmp_path / "nbcog"
    source.mkdir()
    for name in PROJECT:
        if (ROOT / name).is_dir():
            skip = shutil.ignore_patterns("__pycache__", "artifacts", "*.egg-info")
            shutil.copytree(ROOT / name, source / name, ignore=skip)
        else:
            shutil.copy(ROOT / name, source / name)
    venv = make_venv(tmp_path / "venv", f"{source}[test]", cwd=tmp_path)
    env = venv_environ(venv, tmp_path / "home")
    env["NBCOG_CACHE"] = str(tmp_path / "cache")  # a machine where the helper was never made
    env["PYTHONDONTWRITEBYTECODE"] = "1"

    made = subprocess.run(
        [str(source / "scripts" / "ipykernel6-venv")],
        env=env,
        cwd=source,
        check=True,
        capture_output=True,
        text=True,
    )
    helper = Path(made.stdout.strip())
    assert helper.is_relative_to(tmp_path / "cache")

    mine = distributions(venv / "bin" / "python", env, tmp_path)
    seen = distributions(helper, env, tmp_path)
    added = {name for name, (_, own) in seen.items() if own}
    assert "ipykernel" in added
    assert seen["ipykernel"][0].startswith("6.")
    assert mine["nbcog"] == [mine["nbcog"][0], True]  # installed in the venv, not the base
    # Everything else the helper sees is the venv's, version for version, and nothing more.
    assert {n: v for n, (v, _) in seen.items() if n not in added} == {
        n: v for n, (v, _) in mine.items() if n not in added
    }

    ran = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider", "-q", KERNEL_TEST],
        env={**env, "NBCOG_IPYKERNEL6_PYTHON": str(helper)},
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout[-5000:] + ran.stderr[-2000:]
    assert "1 passed" in ran.stdout
