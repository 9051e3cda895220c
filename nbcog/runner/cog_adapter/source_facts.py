"""What only a handler's source tells: ``@streaming``, and which ``Input()`` sets a default.

``@streaming`` is an identity decorator, and ``Input(description=...)`` cannot be told from
``Input(default=None)`` at runtime although cog's Go generator treats them differently. So the
source is parsed with ``ast`` (``inspect.getsource`` also finds IPython cells, which IPython
registers in ``linecache``). Without source, a handler is not streaming and every ``Input()``
counts as having a default.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import inspect
import textwrap
import types
from dataclasses import dataclass
from typing import Any

import cog


@dataclass(frozen=True)
class SourceFacts:
    """``streaming``: decorated with ``@streaming``; ``explicit_default``: parameter name to
    whether its written default sets one (parameters without a default are absent)."""

    streaming: bool = False
    explicit_default: dict[str, bool] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, func: types.FunctionType) -> SourceFacts:
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
        except (OSError, TypeError, SyntaxError):
            return cls()
        node = tree.body[0] if tree.body else None
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return cls()
        args = node.args
        positional = args.posonlyargs + args.args
        pairs = [
            *zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True),
            *(
                (arg, default)
                for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True)
                if default
            ),
        ]
        return cls(
            streaming=any(_is_streaming(d, func.__globals__) for d in node.decorator_list),
            explicit_default={arg.arg: _sets_default(default) for arg, default in pairs},
        )


def _sets_default(expr: ast.expr) -> bool:
    """``Input("x")`` and ``Input(default=...)`` set a default; ``Input(description=...)`` not.

    Anything that is not a call (a constant, a name) is taken as a default.
    """
    if not isinstance(expr, ast.Call):
        return True
    return bool(expr.args) or any(kw.arg in ("default", None) for kw in expr.keywords)


def _is_streaming(decorator: ast.expr, namespace: dict[str, Any]) -> bool:
    """``@streaming``, ``@streaming()``, ``@cog.streaming`` or an alias of them.

    The name is looked up in the function's globals and must be ``cog.streaming`` itself; a
    name that cannot be resolved (a local import) is accepted by its spelling.
    """
    if isinstance(decorator, ast.Call):
        if decorator.args or decorator.keywords:
            return False
        decorator = decorator.func
    try:
        return _evaluate(decorator, namespace) is cog.streaming
    except (LookupError, AttributeError):
        return ast.unparse(decorator) in ("streaming", "cog.streaming")


def _evaluate(expr: ast.expr, namespace: dict[str, Any]) -> Any:
    if isinstance(expr, ast.Name):
        return namespace[expr.id] if expr.id in namespace else getattr(builtins, expr.id)
    if isinstance(expr, ast.Attribute):
        return getattr(_evaluate(expr.value, namespace), expr.attr)
    raise LookupError(ast.unparse(expr))
