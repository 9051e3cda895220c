"""The way out of the notebook: write a Cog project (``%cog export``, ``nbcog export``), check it.

Imports runner, core and (for ``--check``'s nbcog side) ``nbcog.testing``; never IPython: the
kernel passes its namespace and cell sources in.

* ``source``: a predictor defined in cells, as one module with what it needs from them.
* ``packages``: the distributions that module imports, pinned; local modules; the GPU rule.
* ``project``: the files (predictor, ``cog.yaml``, ``.cog/openapi_schema.json``, README), and
  writing them into DIR with the ``--force`` rules.
* ``check``: coglet in a fresh virtualenv next to nbcog; ``build``: the project staged and its
  schema made from its code, as ``cog build`` does; ``compare``: the requests, the diff table.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nbcog.core.inputs import parse_inputs
from nbcog.core.schema import PredictorSchema
from nbcog.export.build import SCHEMA_PATH
from nbcog.export.check import CheckFailed, check
from nbcog.export.compare import Report
from nbcog.export.project import Plan, plan_notebook, plan_reference, write
from nbcog.export.source import Cell, ExportError

__all__ = [
    "Cell",
    "CheckFailed",
    "ExportError",
    "Exported",
    "Report",
    "check",
    "export_and_check",
    "export_notebook",
    "export_reference",
]


@dataclass(frozen=True)
class Exported:
    """What an export wrote where, and what it found."""

    directory: Path
    plan: Plan
    replaced: list[str]

    def summary(self) -> str:
        """A few lines: the files, the packages, the GPU decision, the next command."""
        plan = self.plan
        pins = ", ".join(r.pin for r in plan.requirements) or "none besides cog"
        lines = [
            f"nbcog: exported {plan.predict} to {self.directory}: {', '.join(plan.files)}",
            f"  python_packages: {pins}",
            f"  gpu: {'true, ' + plan.gpu_reasons[0] if plan.gpu_reasons else 'false'}",
        ]
        if plan.concurrency > 1:
            lines.append(f"  concurrency.max: {plan.concurrency}")
        if plan.unpinned:
            unpinned = ", ".join(plan.unpinned)
            lines.append(f"  not pinned (no installed distribution provides them): {unpinned}")
        if self.replaced:
            lines.append(f"  replaced: {', '.join(self.replaced)}")
        lines.append(f"  next: cd {self.directory} && cog build -t my-model (see its README.md)")
        return "\n".join(lines)


def export_notebook(
    directory: Path,
    name: str,
    namespace: Mapping[str, object],
    cells: Sequence[Cell],
    *,
    train: str | None = None,
    force: bool = False,
    folder: Path | None = None,
) -> Exported:
    """Write ``namespace[name]``, defined in ``cells``, as a Cog project into ``directory``.

    Raises:
        ExportError: something it needs cannot be written as source, or ``directory`` is
            not empty and ``force`` is not given.
    """
    plan = plan_notebook(name, namespace, cells, train=train, folder=folder or Path.cwd())
    return Exported(directory, plan, write(directory, plan.files, force=force))


def export_reference(
    directory: Path,
    ref: str,
    *,
    train: str | None = None,
    force: bool = False,
    folder: Path | None = None,
) -> Exported:
    """Write the predictor ``ref`` names (``file.py:Name``, ``module:Name``) into ``directory``."""
    plan = plan_reference(ref, train=train, folder=folder or Path.cwd())
    return Exported(directory, plan, write(directory, plan.files, force=force))


def export_and_check(
    directory: Path,
    export: Callable[[], Exported],
    original: object,
    *,
    train: object | None = None,
    check_it: bool = False,
    force: bool = False,
    inputs: Sequence[str] = (),
    say: Callable[[str], None] = print,
) -> Report | None:
    """What ``%cog export`` and ``nbcog export`` do: export, then (``check_it``) check.

    With ``check_it``, a DIR that is already a non-empty project is checked as it is (hand
    edits included) unless ``force`` asks to export it again first. ``original`` (and
    ``train``) is what nbcog serves for the comparison; ``inputs`` are the ``-i key=value``
    arguments of its prediction, typed by the project's ``Input`` schema (none: the defaults).

    Raises:
        ExportError: the export cannot be written.
        CheckFailed: the check could not run, or an answer differs.
    """
    if check_it and not force and directory.is_dir() and any(directory.iterdir()):
        say(f"nbcog: checking the project already in {directory} (--force exports it again first)")
    else:
        say(export().summary())
    if not check_it:
        return None
    try:
        document = json.loads((directory / SCHEMA_PATH).read_text())
    except (OSError, ValueError) as exc:
        msg = f"cannot read {directory / SCHEMA_PATH}: {exc}"
        raise CheckFailed(msg) from None
    try:
        values = (
            parse_inputs(inputs, PredictorSchema.from_openapi(document).input()) if inputs else None
        )
    except ValueError as exc:
        raise CheckFailed(str(exc)) from None
    report = check(directory, original, train=train, inputs=values, say=say)
    say(report.table())
    if not report.ok:
        differing = [row.request for row in report.rows if not row.same]
        msg = (
            f"the project in {directory} does not answer like the original: "
            f"{'; '.join(differing)} differ (see the table above)"
        )
        raise CheckFailed(msg)
    return report
