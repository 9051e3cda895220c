"""``%cog export``: the notebook's side of ``nbcog.export`` (its namespace and cell sources).

IPython compiles every cell under a file name of its own and keeps the code in ``linecache``
(``shell.compile._filename_map`` maps those names to execution counts): that is the source
``nbcog.export.source`` traces the predictor's needs through.
"""

from __future__ import annotations

import linecache
import sys
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from nbcog.export import (
    Cell,
    CheckFailed,
    ExportError,
    export_and_check,
    export_notebook,
    export_reference,
)
from nbcog.kernel.registry import ServerRegistry


def notebook_cells(shell: InteractiveShell) -> list[Cell]:
    """The code of the cells this kernel has run, with their execution counts."""
    numbers: dict[str, int] = getattr(shell.compile, "_filename_map", {})
    cells = []
    for filename, number in numbers.items():
        lines = linecache.getlines(filename)
        if lines:
            cells.append(Cell(int(number), filename, "".join(lines)))
    return cells


def default_name(registry: ServerRegistry) -> str:
    """What ``%cog export DIR`` exports: the last served predictor, else ``Predictor``."""
    handles = registry.servers()
    return handles[-1].label if handles else "Predictor"


def local_file_ref(value: object, folder: Path) -> str | None:
    """``file.py:Name`` when ``value`` is a class or function of a module file under ``folder``
    (``%%writefile predict.py`` then ``from predict import Predictor``)."""
    module = sys.modules.get(getattr(value, "__module__", None) or "")
    file = getattr(module, "__file__", None)
    name = getattr(value, "__name__", None)
    if module is None or module.__name__ == "__main__" or not file or not name:
        return None
    path = Path(file).resolve()
    inside = folder.resolve() in path.parents and "site-packages" not in path.parts
    if not inside or getattr(module, name, None) is not value:
        return None
    return f"{path.relative_to(folder.resolve()).as_posix()}:{name}"


def export_magic(
    shell: InteractiveShell, args: Any, resolve: Any, registry: ServerRegistry
) -> None:
    """Run ``%cog export`` with parsed ``args``; ``resolve`` looks a NAME up as ``%cog serve``.

    Without a NAME it exports the newest server of ``registry`` (the magic's).
    """
    if args.input and not args.check:
        msg = "-i gives the inputs of --check's prediction: add --check (or leave -i out)"
        raise UsageError(msg)
    directory = Path(args.directory).expanduser()
    name: str = args.name or default_name(registry)
    is_ref = ":" in name or name.endswith(".py")
    original = resolve(name)
    train = resolve(args.train) if args.train else None
    cwd = Path.cwd()
    local = None if is_ref else local_file_ref(original, cwd)
    if local is not None:  # imported from a file next to the notebook: export that file
        name, is_ref = local, True

    def export() -> Any:
        if is_ref:
            return export_reference(directory, name, train=args.train, force=args.force, folder=cwd)
        for label, value in (("NAME", name), ("--train", args.train)):
            if value is not None and "." in value:
                msg = f"{label} {value!r}: give a class or function defined in the notebook"
                raise ExportError(msg)
        return export_notebook(
            directory,
            name,
            shell.user_ns,
            notebook_cells(shell),
            train=args.train,
            force=args.force,
            folder=cwd,
        )

    try:
        export_and_check(
            directory,
            export,
            original,
            train=train,
            check_it=args.check,
            force=args.force,
            inputs=args.input or (),
        )
    except (ExportError, CheckFailed) as exc:
        raise UsageError(str(exc)) from None
