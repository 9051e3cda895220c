"""A predictor defined in notebook cells, written out as one module with what it needs.

The cells are the kernel's compiled cell sources (IPython keeps them in ``linecache``), the
namespace is the kernel's ``user_ns``. Starting from the predictor's own definition, every
global name its code refers to (found with ``symtable``, so locals and attributes are not
mistaken for globals) is resolved against the namespace and traced to the cell statement that
bound it: an import, a ``def``/``class`` (followed in turn), or a constant. Nothing else from
the notebook is copied: no plotting, no magics, no cell that ran a prediction.

A name whose value cannot be written as source (an object built at run time, a lambda, a
function that ``%run`` or ``exec`` defined) raises ``ExportError`` naming it and saying what to
do, before anything is written.
"""

from __future__ import annotations
import __future__

import ast
import builtins
import importlib
import inspect
import symtable
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

HEADER = "# Written by nbcog's %cog export from notebook cells: {roots} and what {uses}.\n"
_LITERALS = (str, bytes, int, float, complex, bool, type(None))


class ExportError(Exception):
    """The predictor cannot be exported as it is; the message says why and what to do."""


@dataclass(frozen=True)
class Cell:
    """One executed cell: its execution count, the file name it was compiled under, its code."""

    number: int
    filename: str
    source: str


@dataclass(frozen=True)
class _Statement:
    """A top-level statement of a cell, with the names it binds."""

    cell: Cell
    node: ast.stmt
    binds: frozenset[str]

    @property
    def position(self) -> tuple[int, int]:
        return (self.cell.number, self.node.lineno)

    @property
    def first_line(self) -> int:
        decorators: list[ast.expr] = getattr(self.node, "decorator_list", [])
        return min([self.node.lineno, *(d.lineno for d in decorators)])

    def text(self) -> str:
        lines = self.cell.source.splitlines()
        end = self.node.end_lineno or self.node.lineno
        return "\n".join(lines[self.first_line - 1 : end])

    def where(self) -> str:
        return f"In [{self.cell.number}]"


@dataclass
class _Collected:
    """What goes into the module, by position in the notebook: import statements with the
    aliases that are needed, and definitions (source text, whether it is a constant)."""

    imports: dict[tuple[int, int], tuple[ast.stmt, list[ast.alias]]] = field(default_factory=dict)
    definitions: dict[tuple[int, int, str], tuple[str, bool]] = field(default_factory=dict)


def collect_module(
    roots: Sequence[str], namespace: Mapping[str, object], cells: Iterable[Cell]
) -> str:
    """The source of a module defining ``roots`` (names in ``namespace``) and their needs.

    Imports come first, then the definitions, each group in the notebook's execution order.

    Raises:
        ExportError: a root or something it needs cannot be written as source.
    """
    index = _Index(cells)
    collected = _Collected()
    seen: set[str] = set()
    problems: list[str] = []
    pending = [(name, f"{name} is what you export") for name in roots]
    while pending:
        name, why = pending.pop(0)
        if name in seen:
            continue
        seen.add(name)
        try:
            needs = _resolve(name, why, namespace, index, collected)
        except ExportError as exc:  # go on: one message names every problem
            problems.append(str(exc))
            continue
        pending += [(needed, f"{name} uses it") for needed in sorted(needs)]
    if problems:
        raise ExportError("\n".join(problems))
    imports = [
        _import_text(node, aliases) for _, (node, aliases) in sorted(collected.imports.items())
    ]
    body = ""
    previous_constant = False
    for _, (text, constant) in sorted(collected.definitions.items()):
        separator = "\n" if constant and previous_constant else "\n\n\n"
        body += (separator if body else "") + text
        previous_constant = constant
    plural = len(roots) > 1
    header = HEADER.format(roots=" and ".join(roots), uses="they use" if plural else "it uses")
    if namespace.get("annotations") is __future__.annotations:
        # IPython keeps a cell's __future__ import for later cells: the code was compiled so.
        imports.insert(0, "from __future__ import annotations\n")
    top = "\n".join(imports) + "\n\n\n" if imports else "\n"
    return header + top + body + "\n"


class _Index:
    """The last statement binding each name, in execution order."""

    def __init__(self, cells: Iterable[Cell]) -> None:
        self.last: dict[str, _Statement] = {}
        for cell in sorted(cells, key=lambda c: c.number):
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:  # a cell that failed to compile defined nothing
                continue
            for node in tree.body:
                statement = _Statement(cell, node, frozenset(_bound_names(node)))
                for name in statement.binds:
                    self.last[name] = statement


def _bound_names(node: ast.stmt) -> Iterable[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        yield node.name
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
        for alias in node.names:
            yield alias.asname or alias.name.split(".")[0]
    else:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                yield sub.id


def _resolve(
    name: str,
    why: str,
    namespace: Mapping[str, object],
    index: _Index,
    collected: _Collected,
) -> set[str]:
    """Add what binds ``name`` to ``collected``; returns the names that binding needs."""
    if name not in namespace:
        if hasattr(builtins, name):
            return set()
        msg = f"{name} is not defined in the notebook ({why}): run the cell that defines it"
        raise ExportError(msg)
    value = namespace[name]
    statement = index.last.get(name)
    node = statement.node if statement is not None else None
    if statement is not None and isinstance(node, (ast.Import, ast.ImportFrom)):
        alias = _matching_alias(node, name, value)
        if alias is not None:
            aliases = collected.imports.setdefault(statement.position, (node, []))[1]
            if alias not in aliases:
                aliases.append(alias)
            return set()
    definition = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    if statement is not None and isinstance(node, definition) and _defined_by(value, statement):
        cell, line = statement.position
        collected.definitions[(cell, line, name)] = (statement.text(), False)
        return _free_globals(statement.text()) - {name}
    if _is_literal(value):
        text = _constant_text(name, value, statement)
        cell, line = _position(statement)
        collected.definitions[(cell, line, name)] = (text, True)
        return set()
    importable = _import_for(name, value)
    if importable is not None:
        collected.imports[(-1, len(collected.imports))] = importable
        return set()
    raise ExportError(_cannot_export(name, value, why, statement))


def _position(statement: _Statement | None) -> tuple[int, int]:
    return statement.position if statement is not None else (0, 0)


def _matching_alias(
    node: ast.Import | ast.ImportFrom, name: str, value: object
) -> ast.alias | None:
    """The alias of ``node`` that binds ``name``, if importing it now gives ``value``."""
    for alias in node.names:
        if (alias.asname or alias.name.split(".")[0]) != name:
            continue
        try:
            if isinstance(node, ast.Import):
                imported: object = importlib.import_module(alias.name.split(".")[0])
                if alias.asname:
                    imported = importlib.import_module(alias.name)
            elif node.level:
                return None  # a relative import means nothing outside a package
            else:
                module = importlib.import_module(node.module or "")
                imported = getattr(module, alias.name, None)
                if imported is None:
                    imported = importlib.import_module(f"{node.module}.{alias.name}")
        except ImportError:
            return None
        return alias if imported is value else None
    return None


def _import_text(node: ast.stmt, aliases: list[ast.alias]) -> str:
    if isinstance(node, ast.ImportFrom):
        return ast.unparse(ast.ImportFrom(module=node.module, names=aliases, level=0))
    if isinstance(node, ast.Import):
        return ast.unparse(ast.Import(names=aliases))
    return ast.unparse(node)


def _defined_by(value: object, statement: _Statement) -> bool:
    """``value`` is the function or class that ``statement`` (in its cell) defined."""
    code = _code_of(value)
    if isinstance(statement.node, ast.ClassDef):
        if not inspect.isclass(value) or value.__module__ != "__main__":
            return False
        methods = [_code_of(v) for v in vars(value).values()]
        files = {c.co_filename for c in methods if c is not None}
        return not files or files == {statement.cell.filename}
    return (
        code is not None
        and code.co_filename == statement.cell.filename
        and code.co_firstlineno == statement.first_line
    )


def _code_of(value: object) -> types.CodeType | None:
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    if isinstance(value, property):
        value = value.fget
    try:
        value = inspect.unwrap(value)  # type: ignore[arg-type]
    except ValueError:
        return None
    code = getattr(value, "__code__", None)
    return code if isinstance(code, types.CodeType) else None


def _free_globals(source: str) -> set[str]:
    """The global names a definition's code reads (decorators, bases and defaults included)."""
    names: set[str] = set()

    def walk(table: symtable.SymbolTable) -> None:
        for symbol in table.get_symbols():
            if symbol.is_referenced() and (table.get_type() == "module" or symbol.is_global()):
                names.add(symbol.get_name())
        for child in table.get_children():
            walk(child)

    walk(symtable.symtable(source, "<cell>", "exec"))
    return names


def _is_literal(value: object) -> bool:
    """A constant that ``repr`` writes as source and ``ast.literal_eval`` reads back."""
    if isinstance(value, _LITERALS):
        try:
            return bool(ast.literal_eval(repr(value)) == value)
        except (ValueError, SyntaxError):
            return False  # nan, inf
    if isinstance(value, (list, tuple, set, frozenset)):
        return type(value) in (list, tuple, set) and all(_is_literal(v) for v in value)
    if isinstance(value, dict):
        return type(value) is dict and all(
            _is_literal(k) and _is_literal(v) for k, v in value.items()
        )
    return False


def _constant_text(name: str, value: object, statement: _Statement | None) -> str:
    """The cell's own assignment when it still gives ``value``, else ``NAME = repr(value)``."""
    if statement is not None and isinstance(statement.node, (ast.Assign, ast.AnnAssign)):
        node = statement.node
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if [ast.unparse(t) for t in targets] == [name] and node.value is not None:
            try:
                if ast.literal_eval(node.value) == value:
                    return statement.text()
            except (ValueError, SyntaxError, TypeError):
                pass
    return f"{name} = {value!r}"


def _import_for(name: str, value: object) -> tuple[ast.stmt, list[ast.alias]] | None:
    """An import that gives ``value`` outside the notebook (a module, or a module's object)."""
    if isinstance(value, types.ModuleType):
        module_name = value.__name__
        if module_name == "__main__" or getattr(value, "__spec__", None) is None:
            return None
        alias = ast.alias(name=module_name, asname=None if module_name == name else name)
        return ast.Import(names=[alias]), [alias]
    owner = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    if not isinstance(owner, str) or owner == "__main__" or not isinstance(qualname, str):
        return None
    try:
        found = getattr(importlib.import_module(owner), qualname, None)
    except ImportError:
        return None
    if found is not value or "." in qualname:
        return None
    alias = ast.alias(name=qualname, asname=None if qualname == name else name)
    return ast.ImportFrom(module=owner, names=[alias], level=0), [alias]


def _cannot_export(name: str, value: object, why: str, statement: _Statement | None) -> str:
    kind = type(value).__name__
    code = _code_of(value)
    if inspect.isfunction(value) and value.__name__ == "<lambda>":
        return (
            f"cannot export {name} ({why}): it is a lambda stored in a global; "
            f"write it as `def {name}(...)` in a cell"
        )
    if (code is not None or inspect.isclass(value)) and getattr(value, "__module__", None) in (
        "__main__",
        None,
    ):
        origin = code.co_filename if code is not None else "no notebook cell"
        return (
            f"cannot export {name} ({why}): it was not defined by a notebook cell "
            f"(it comes from {origin}, e.g. %run or exec); put it in a module next to the "
            f"notebook and import it from there, or define it in a cell"
        )
    where = f" by `{statement.text().splitlines()[0]}` in {statement.where()}" if statement else ""
    return (
        f"cannot export {name} ({why}): it is a {kind} object built at run time{where}, "
        f"not source; build it in setup() (self.{name.lower()} = ...) or from constants"
    )
