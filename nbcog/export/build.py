"""What ``cog build`` does before coglet runs: it copies the project, then writes the schema
from the project's code.

``--check`` does the same in a scratch folder, so DIR itself is never written to and a hand
edit of DIR's code counts even when ``.cog/openapi_schema.json`` was not exported again: the
schema coglet gets is made from DIR's code by ``python -m nbcog schema`` (this interpreter, so
the code's packages are importable), and the exported file is compared with it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SCHEMA_PATH = ".cog/openapi_schema.json"


LINK_OVER = 1 << 20


def stage(directory: Path, target: Path) -> None:
    """Copy the project into ``target``; files over 1 MiB (weights) are hard-linked if they can
    be, and nothing writes to those."""

    def link_or_copy(source: str, destination: str) -> None:
        if os.path.getsize(source) > LINK_OVER:
            try:
                os.link(source, destination)
            except OSError:  # another file system, or links not allowed
                pass
            else:
                return
        shutil.copy2(source, destination)

    shutil.copytree(
        directory,
        target,
        ignore=shutil.ignore_patterns("__pycache__"),
        copy_function=link_or_copy,
        symlinks=True,
    )


class SchemaJob:
    """``python -m nbcog schema PREDICT [--train TRAIN]`` run in the staged project."""

    def __init__(self, project: Path, predict: str, train: str | None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COG_")}
        package_root = str(Path(__file__).resolve().parents[2])  # holds nbcog/export/build.py
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        command = [sys.executable, "-m", "nbcog", "schema", predict]
        if train is not None:
            command += ["--train", train]
        self._process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            command,
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def result(self) -> tuple[str | None, str]:
        """The schema document's text (``None`` on failure) and what the command printed."""
        out, err = self._process.communicate()
        return (out if self._process.returncode == 0 else None), err.strip()

    def stop(self) -> None:
        """End the command if it still runs (the check failed before it was needed)."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.communicate()
