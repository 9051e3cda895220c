"""Writing a Cog project: the predictor's source, ``cog.yaml``, the schema coglet reads, a README.

``plan_notebook`` (a predictor from notebook cells) and ``plan_reference`` (``file.py:Name`` or
``module:Name``) decide every file's content first, so an error leaves nothing half written;
``write`` then puts them into DIR. DIR must be empty or missing unless ``force`` is given, and
then only the files of the export are replaced (other files in DIR stay). Nothing is written
outside DIR: a path of the export that is a symbolic link, or leads out of DIR, is refused.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import shlex
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbcog.core.jsonenc import dumps
from nbcog.export.build import SCHEMA_PATH
from nbcog.export.packages import Requirement, imported_modules, local_module_path, requirements
from nbcog.export.source import Cell, ExportError, collect_module
from nbcog.runner.cog_adapter import HandlerInfo
from nbcog.runner.runtime import Runtime


@dataclass
class Plan:
    """Everything an export writes (relative path to content) and what it found on the way."""

    files: dict[str, str]
    predict: str
    train: str | None
    concurrency: int
    streaming: bool
    requirements: list[Requirement]
    unpinned: list[str] = field(default_factory=list)

    @property
    def gpu_reasons(self) -> list[str]:
        return [r.gpu_reason for r in self.requirements if r.gpu_reason]


def plan_notebook(
    name: str,
    namespace: Mapping[str, object],
    cells: Sequence[Cell],
    *,
    train: str | None = None,
    folder: Path,
) -> Plan:
    """The export of ``namespace[name]`` (and of the ``train`` handler) as ``predict.py``.

    ``folder`` is the notebook's working directory: modules imported from there are copied.
    An instance of a class defined in the notebook exports that class.
    """
    name = _class_of_instance(name, namespace)
    train = _class_of_instance(train, namespace) if train is not None else None
    roots = [name] if train is None or train == name else [name, train]
    source = collect_module(roots, namespace, cells)
    files = {"predict.py": source}
    runtime = _load(namespace[name], namespace[train] if train is not None else None, name)
    train_ref = None
    if train is not None:
        train_ref = f"predict.py:{train}"
    elif runtime.train is not None:
        train_ref = f"predict.py:{name}"
    return _finish(files, f"predict.py:{name}", train_ref, runtime, folder)


def _class_of_instance(name: str, namespace: Mapping[str, object]) -> str:
    value = namespace.get(name)
    if value is None or inspect.isclass(value) or inspect.isroutine(value):
        return name
    cls = type(value)
    found = namespace.get(cls.__name__)
    return cls.__name__ if found is cls and cls.__module__ == "__main__" else name


def plan_reference(ref: str, *, train: str | None = None, folder: Path) -> Plan:
    """The export of a ``file.py:Name`` or ``module:Name`` predictor (paths from ``folder``).

    The file is copied as it is, with each local module it imports from its own folder (for
    ``module:Name``, from ``folder``), keeping the layout the imports need.
    """
    target = ref.partition(":")[0]
    root = (folder / target).resolve().parent if target.endswith(".py") else folder.resolve()
    files: dict[str, str] = {}
    predict, predict_path = _copy_reference(ref, folder, root, files)
    train_ref, train_path = (
        _copy_reference(train, folder, root, files) if train is not None else (None, None)
    )
    with _importable(root):  # the file's siblings, as coglet will find them in the project
        runtime = _load(predict_path, train_path, ref)
    if train_ref is None and runtime.train is not None:
        train_ref = predict
    file, _, name = predict.partition(":")
    return _finish(
        files, f"{file}:{name or _handler_owner(runtime.predict)}", train_ref, runtime, root
    )


def _copy_reference(ref: str, folder: Path, root: Path, files: dict[str, str]) -> tuple[str, str]:
    """Copy the file ``ref`` names into ``files``.

    Returns the ref as ``cog.yaml`` names it (relative to ``root``, the project's top) and
    as this process loads it (an absolute path).
    """
    target, _, name = ref.partition(":")
    if target.endswith(".py"):
        path = (folder / target).resolve()
    else:
        if local_module_path(target.split(".")[0], folder) is None:
            msg = f"cannot export {ref}: {target} is not a module in {folder}; give file.py:Name"
            raise ExportError(msg)
        path = (folder / Path(*target.split("."))).with_suffix(".py").resolve()
        if not path.is_file():
            path = (folder / Path(*target.split(".")) / "__init__.py").resolve()
    if not path.is_file():
        msg = f"cannot export {ref}: there is no file {path}"
        raise ExportError(msg)
    try:
        relative = path.relative_to(root).as_posix()
    except ValueError:
        relative = path.name  # a --train file from elsewhere goes to the top of the project
    files[relative] = path.read_text()
    suffix = f":{name}" if name else ""
    return relative + suffix, f"{path}{suffix}"


@contextlib.contextmanager
def _importable(folder: Path) -> Iterator[None]:
    added = str(folder) not in sys.path
    if added:
        sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        if added:
            sys.path.remove(str(folder))


def _load(predictor: object, train: object | None, label: str) -> Runtime:
    runtime = Runtime(predictor, train=train)
    try:
        runtime.load()
    except Exception as exc:
        msg = f"cannot load {label}: {type(exc).__name__}: {exc}"
        raise ExportError(msg) from None
    return runtime


def _handler_owner(handler: HandlerInfo | None) -> str:
    fn = handler.fn if handler is not None else None
    owner = getattr(fn, "__self__", None)
    return type(owner).__name__ if owner is not None else getattr(fn, "__name__", "Predictor")


def _finish(
    files: dict[str, str], predict: str, train: str | None, runtime: Runtime, folder: Path
) -> Plan:
    """Add local modules, ``cog.yaml``, the schema and the README to ``files``."""
    modules = _add_local_modules(files, folder)
    pinned, unpinned = requirements(modules)
    handler = runtime.predict or runtime.train
    plan = Plan(
        files=files,
        predict=predict,
        train=train,
        concurrency=handler.concurrency if handler is not None else 1,
        streaming=bool(runtime.predict and runtime.predict.streaming),
        requirements=pinned,
        unpinned=unpinned,
    )
    files["cog.yaml"] = cog_yaml(plan)
    document = runtime.openapi()
    files[SCHEMA_PATH] = dumps(document) + "\n"  # as `nbcog schema` prints it
    files["README.md"] = readme(plan, example_input(document))
    return plan


def _add_local_modules(files: dict[str, str], folder: Path) -> list[str]:
    """Copy modules imported from ``folder`` (recursively); returns the other imported names."""
    others: list[str] = []
    queue = list(files)
    while queue:
        source = files[queue.pop(0)]
        for module in imported_modules(source):
            path = local_module_path(module, folder)
            if path is None:
                if module not in others:
                    others.append(module)
                continue
            members = sorted(path.rglob("*.py")) if path.is_dir() else [path]
            for member in members:
                relative = member.relative_to(folder).as_posix()
                if relative not in files:
                    files[relative] = member.read_text()
                    queue.append(relative)
    return others


def cog_yaml(plan: Plan) -> str:
    """``cog.yaml`` for the plan: this Python, the pinned packages, predict/train, concurrency."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    lines = [
        "# Written by nbcog's export: `cog build` reads this file (https://cog.run/yaml).",
        "build:",
        f'  python_version: "{version}"',
    ]
    if plan.requirements:
        lines.append("  python_packages:")
        lines += [f'    - "{r.pin}"' for r in plan.requirements]
    if plan.gpu_reasons:
        lines.append(f"  gpu: true  # {plan.gpu_reasons[0]}")
    lines.append(f'predict: "{plan.predict}"')
    if plan.train is not None:
        lines.append(f'train: "{plan.train}"')
    if plan.concurrency > 1:
        lines += ["concurrency:", f"  max: {plan.concurrency}"]
    return "\n".join(lines) + "\n"


_PLACEHOLDERS: dict[str, Any] = {"string": "...", "integer": 1, "number": 1.0, "boolean": True}


def example_input(document: Mapping[str, Any]) -> dict[str, Any]:
    """Placeholder values for the required inputs (files as a URL), for the README's lines."""
    schema = document["components"]["schemas"]["Input"]
    example: dict[str, Any] = {}
    for name in schema.get("required", []):
        prop = schema["properties"].get(name, {})
        if prop.get("format") == "uri":
            example[name] = "https://example.com/input"
        else:
            example[name] = _PLACEHOLDERS.get(prop.get("type", "string"), "...")
    return example


def readme(plan: Plan, example: Mapping[str, Any]) -> str:
    """The next commands, for whoever opens DIR, with ``example`` as the inputs."""
    body = shlex.quote(json.dumps({"input": example}))
    local = {k: "@input.png" if v == "https://example.com/input" else v for k, v in example.items()}
    flags = "".join(f" -i {shlex.quote(f'{k}={v}')}" for k, v in local.items())
    post = (
        f"curl -s -X POST localhost:5000/predictions -H 'Content-Type: application/json' -d {body}"
    )
    commands = [
        (f"cog predict{flags}", "one prediction in the container (@path: a local file)"),
        ("cog build -t my-model", "the image"),
        ("docker run -p 5000:5000 my-model", "serve it on port 5000"),
        ("curl -s localhost:5000/health-check", "READY once setup() has run: the readiness probe"),
        (post, ""),
    ]
    if plan.streaming:
        sse = post.replace("curl -s", "curl -sN", 1) + " -H 'Accept: text/event-stream'"
        commands.append((sse, ""))
    commands.append(("cog push r8.im/<you>/<model>", "deploy to Replicate"))
    width = max(len(command) for command, comment in commands if comment)
    lines = [f"{c:<{width}}  # {why}" if why else c for c, why in commands]
    return (
        "# A Cog model exported from a notebook\n\n"
        f"`{plan.predict.partition(':')[0]}` holds the predictor, `cog.yaml` says how to build it"
        f" and `{SCHEMA_PATH}` is its schema (what `cog build` would write). Written by"
        " nbcog's `%cog export` (or `python -m nbcog export`); `--check` serves it with coglet"
        " next to nbcog and compares the answers.\n\n"
        "With Docker and the [Cog CLI](https://github.com/replicate/cog):\n\n"
        "```bash\n" + "\n".join(lines) + "\n```\n"
    )


def write(directory: Path, files: Mapping[str, str], *, force: bool) -> list[str]:
    """Write ``files`` under ``directory``; returns the paths that existed and were replaced.

    Raises:
        ExportError: ``directory`` is a file, or is not empty and ``force`` is not given, or a
            path would be written through a symbolic link or outside ``directory``.
    """
    if directory.exists() and not directory.is_dir():
        msg = f"cannot export into {directory}: it is a file, not a directory"
        raise ExportError(msg)
    if directory.is_dir() and any(directory.iterdir()) and not force:
        msg = (
            f"{directory} exists and is not empty: give --force to replace the exported files "
            "in it (other files stay), or choose a new directory"
        )
        raise ExportError(msg)
    root = directory.resolve()
    targets = [_safe_target(root, relative) for relative in files]
    replaced = [relative for relative, path in zip(files, targets, strict=True) if path.exists()]
    for relative, path in zip(files, targets, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[relative])
    return replaced


def _safe_target(root: Path, relative: str) -> Path:
    path = root / relative
    for part in [path, *path.parents]:
        if part == root:
            break
        if part.is_symlink():
            msg = f"cannot export {relative}: {part} is a symbolic link (it may lead out of DIR)"
            raise ExportError(msg)
    if root not in path.resolve().parents:
        msg = f"cannot export {relative}: it is outside {root}"
        raise ExportError(msg)
    return path
