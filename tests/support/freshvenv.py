"""Fresh virtualenvs for the tests that check what a newcomer's machine does (Binder, venvs).

A fresh virtualenv has no system site packages, so a missing requirement shows. pip's own
cache (``~/.cache/pip``) is shared with the machine: after the first run an install takes
seconds, not minutes, and nothing else of the machine is used.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

INSTALL_TIMEOUT = 600


def make_venv(path: Path, *pip_args: str, cwd: Path) -> Path:
    """Create a virtualenv at ``path`` and ``pip install PIP_ARGS`` into it from ``cwd``."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
    python = str(path / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *pip_args],
        cwd=cwd,
        check=True,
        timeout=INSTALL_TIMEOUT,
    )
    return path


def venv_environ(venv: Path, home: Path) -> dict[str, str]:
    """The environment of an activated ``venv``, with Jupyter's per-user files under ``home``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    for name, folder in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data")):
        env[name] = str(home / folder)
    env["JUPYTER_RUNTIME_DIR"] = str(home / "runtime")
    return env
