"""The ``%cog`` line magic: ``serve``, ``stop``, ``status``, ``predict``, ``schema``, ``--help``.

One magic with subcommands, each parsed by its own ``magic_arguments`` parser, so
``%cog serve --help`` shows that command's options and bad arguments are ``UsageError``s (a
one-line message, no traceback). The work is done by ``nbcog.kernel.serving``; this module only
parses, looks names up in the user's namespace, and prints.
"""

from __future__ import annotations

import inspect
import json
import shlex
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display

from nbcog.core.inputs import (
    CHECK_INPUT_HELP,
    INPUT_FLAGS,
    input_option,
    parse_inputs,
)
from nbcog.core.schema import PredictorSchema
from nbcog.core.snippets import LANGUAGES
from nbcog.http.server import PortInUse
from nbcog.kernel import history, serving
from nbcog.kernel.handle import CannotPredict, ServerHandle, shown_once
from nbcog.kernel.registry import ServerRegistry

_COMMANDS = (
    "serve",
    "stop",
    "status",
    "predict",
    "schema",
    "watch",
    "export",
    "history",
    "snippet",
)

HELP = """\
%cog serve NAME [--port N] [--host H] [--upload-url U] [--thread] [--token [VALUE]]
           [--reload]
    Serve NAME over Cog's HTTP API: a class, instance or function defined in the notebook,
    or file.py:Name. Returns at once; setup() runs on a thread and its progress is shown.
    Serving again (re-run the cell) reloads the new code on the same port and URL.
    Shows the live monitor of the server's predictions (HTTP ones included).
    --reload (file.py:Name) reloads on each save of the file or a local module it imports.
    --token requires 'Authorization: Bearer VALUE' on every route but /health-check.
%cog predict [-i key=value ...] [--port N] [--plain]
    Run a prediction like `cog predict`: local paths (or @path) for file inputs. A live
    view shows status, output, logs and metrics as they come (--plain: print the logs,
    then show the output). Returns the output: `out = %cog predict ...`. Blocks the
    cell; the server keeps answering meanwhile.
%cog predict --again ID [-i key=value ...]
    Run prediction ID again with its inputs (files as they were received), -i overriding
    some; a Secret input is never stored, so it must be given again.
%cog history [--port N]
    The predictions the server keeps, newest first: id, status, time, inputs, output.
%cog snippet [ID] [--lang curl|python|js|cog] [--port N]
    Code that makes prediction ID (or one with placeholder inputs) over HTTP, with the
    server's URL (the proxy URL under JupyterHub/Binder) and token.
%cog status    URL, health, predictions in flight and recent, event-loop lag;
    after a failed setup, its logs and traceback.
%cog watch [--port N]
    The live monitor: every prediction, newest first; click one to open its view.
%cog schema [NAME] [--json]
    The inputs and output of the served predictor (or of NAME, without serving it).
%cog stop [--port N]
    Stop the server(s): the port is free again.
%cog export DIR [NAME] [--train NAME] [--force] [--check [-i key=value ...]]
    Write NAME (default: the served predictor) as a Cog project into DIR: predict.py with
    what it needs from the notebook, cog.yaml, .cog/openapi_schema.json, a README.
    --check serves DIR with coglet from a fresh virtualenv next to nbcog and compares.

`%cog COMMAND --help` shows a command's options.
"""


def _port_argument() -> argument:
    return argument("--port", "-p", type=int, default=None, help="the server's port")


@magics_class
class CogMagics(Magics):
    """``%cog ...``: serve a predictor from this kernel and talk to it, in ``registry``."""

    def __init__(self, shell: Any, registry: ServerRegistry) -> None:
        super().__init__(shell)  # type: ignore[no-untyped-call]  # IPython is untyped here
        self.registry = registry

    @line_magic
    def cog(self, line: str) -> Any:
        """Serve a Cog predictor from this kernel. `%cog --help` lists the commands."""
        command, _, rest = line.strip().partition(" ")
        if command in ("", "-h", "--help", "help"):
            print(HELP, end="")
            return None
        if command not in _COMMANDS:
            msg = f"unknown command {command!r}; the commands are: {', '.join(_COMMANDS)}"
            raise UsageError(msg)
        method: Callable[[Any], Any] = getattr(self, f"_{command}")
        if any(word in ("-h", "--help") for word in rest.split()):
            usage = method.parser.format_help()  # type: ignore[attr-defined]
            print(usage.replace("::\n\n  %", "usage: %", 1), end="")
            return None
        try:  # POSIX quoting, so -i "note=two words" and -i note='two words' both work
            argv = shlex.split(strip_comment(rest))
        except ValueError as exc:
            raise UsageError(f"cannot split the arguments: {exc}") from None
        return method(method.parser.parse_args(argv))  # type: ignore[attr-defined]

    # -- serve / stop ----------------------------------------------------------------------

    def _resolve(self, name: str) -> object:
        """A ``file.py:Name``/``module:Name`` ref as it is, else a (dotted) user variable."""
        if ":" in name or name.endswith(".py"):
            return name
        head, *attributes = name.split(".")
        namespace = self.shell.user_ns if self.shell is not None else {}
        if head not in namespace:
            msg = (
                f"{head!r} is not defined in this notebook: run the cell that defines it, "
                "or give file.py:Name"
            )
            raise UsageError(msg)
        value = namespace[head]
        for attribute in attributes:
            try:
                value = getattr(value, attribute)
            except AttributeError:
                msg = f"{name!r}: {type(value).__name__} has no attribute {attribute!r}"
                raise UsageError(msg) from None
        return value

    @magic_arguments("cog serve")
    @argument("name", help="a class, instance or function in the notebook, or file.py:Name")
    @_port_argument()
    @argument("--host", default="127.0.0.1", help="the interface to bind (127.0.0.1)")
    @argument("--upload-url", default=None, help="PUT file outputs here instead of data URLs")
    @argument("--thread", action="store_true", help="serve from a thread, not the kernel loop")
    @argument(
        "--token",
        nargs="?",
        const=True,
        default=None,
        metavar="VALUE",
        help="require this bearer token on every route but /health-check "
        "($NBCOG_TOKEN; no VALUE: a random one, shown once)",
    )
    @argument(
        "--reload",
        action="store_true",
        help="reload on save of file.py:Name and the local modules it imports",
    )
    def _serve(self, args: Any) -> None:
        """Serve NAME; serving again reloads it on the same port and URL."""
        predictor = self._resolve(args.name)
        if not isinstance(predictor, str):
            _describe_or_fail(args.name, predictor)
        try:
            handle = serving.serve_in(
                self.registry,
                predictor,
                port=args.port,
                host=args.host,
                upload_url=args.upload_url,
                thread=args.thread or None,  # without --thread: the loop if one runs here
                name=args.name,
                token=args.token,
                reload=args.reload,
            )
        except PortInUse as exc:
            raise UsageError(exc.strerror) from None
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        handle.watch()

    @magic_arguments("cog watch")
    @_port_argument()
    def _watch(self, args: Any) -> None:
        """The live monitor of a server's predictions, HTTP ones included."""
        self._handle(args.port).watch()

    @magic_arguments("cog stop")
    @_port_argument()
    def _stop(self, args: Any) -> None:
        """Stop this kernel's server(s); their ports are free again."""
        handles = self.registry.servers(args.port)
        if args.port is not None and not handles:
            msg = f"no server of this kernel listens on port {args.port}"
            raise UsageError(msg)
        if not handles:
            print("nbcog: no server is running")
        for handle in handles:
            handle.stop()
            print(f"nbcog: stopped {handle.label} at {handle.url}")

    # -- status / schema -----------------------------------------------------------------

    def _handle(self, port: int | None) -> ServerHandle:
        handles = self.registry.servers(port)
        if not handles:
            where = "" if port is None else f" on port {port}"
            msg = f"no server is running{where}; start one with %cog serve NAME"
            raise UsageError(msg)
        return handles[-1]

    @magic_arguments("cog status")
    @_port_argument()
    def _status(self, args: Any) -> None:
        """URL, health, predictions in flight and recent, event-loop lag."""
        handles = self.registry.servers()
        if args.port is not None:
            handles = [self._handle(args.port)]
        if not handles:
            print("nbcog: no server is running; start one with %cog serve NAME")
        for handle in handles:
            print(handle.status())

    @magic_arguments("cog schema")
    @argument("name", nargs="?", default=None, help="describe NAME without serving it")
    @_port_argument()
    @argument("--json", action="store_true", help="print the whole OpenAPI document")
    def _schema(self, args: Any) -> None:
        """The inputs and output of the served predictor, or of NAME."""
        if args.name is not None:
            from nbcog.runner.runtime import Runtime

            runtime = Runtime(self._resolve(args.name))
            try:
                runtime.load()
            except Exception as exc:  # any load error is one clear line, as in the CLI
                msg = f"cannot load {args.name}: {type(exc).__name__}: {exc}"
                raise UsageError(msg) from None
            schema = PredictorSchema.from_openapi(runtime.openapi())
        else:
            handle = self._handle(args.port)
            found = handle.schema()
            if found is None:
                msg = f"{handle.label} has no schema yet: setup has not succeeded (%cog status)"
                raise UsageError(msg)
            schema = found
        if args.json:
            print(json.dumps(schema.openapi, indent=2))
        else:
            print(describe_schema(schema))

    # -- export --------------------------------------------------------------------------

    @magic_arguments("cog export")
    @argument("directory", help="where to write the Cog project (must be empty, or --force)")
    @argument("name", nargs="?", default=None, help="the predictor (default: the served one)")
    @argument("--train", default=None, help="a training handler of the notebook, or file.py:Name")
    @argument("--force", action="store_true", help="replace the exported files in DIR")
    @argument("--check", action="store_true", help="serve DIR with coglet and compare answers")
    @argument(*INPUT_FLAGS, **input_option(CHECK_INPUT_HELP))
    def _export(self, args: Any) -> None:
        """Write a Cog project for cog build; --check compares coglet's answers with nbcog's."""
        from nbcog.kernel.exporting import export_magic

        assert self.shell is not None  # a registered magic always has its shell
        export_magic(self.shell, args, self._resolve, self.registry)

    # -- predict -------------------------------------------------------------------------

    @magic_arguments("cog predict")
    @argument(
        *INPUT_FLAGS,
        **input_option(
            "an input; repeat for more (and for list inputs); @path or a local path for files"
        ),
    )
    @argument("--again", metavar="ID", default=None, help="re-run prediction ID (-i overrides)")
    @_port_argument()
    @argument(
        "--plain",
        action="store_true",
        help="no live view: print the logs as they come, then show the output",
    )
    def _predict(self, args: Any) -> Any:
        """Run a prediction on the served predictor, show it once, and return its output."""
        handle = self._handle(args.port)
        try:
            handle.wait_until_ready()
            schema = handle.schema()
            if schema is None:
                msg = f"setup of {handle.label} failed; `%cog status` shows its logs"
                raise UsageError(msg)
            inputs = parse_inputs(args.input, schema.input())
            if args.again is not None:
                previous = history.find(handle, args.again)
                inputs = history.rerun_inputs(previous, inputs, schema.secret_inputs())
            plain = args.plain or not self._shows_widgets()
            result = handle.predict(show_view=not plain, **inputs)
        except (CannotPredict, ValueError, LookupError) as exc:
            raise UsageError(str(exc)) from None
        if plain:
            display(result)
        shown_once(result.output)
        return result.output

    def _shows_widgets(self) -> bool:
        """A kernel (a notebook, not terminal IPython): its frontend may render the view."""
        return getattr(self.shell, "kernel", None) is not None

    # -- history / snippet ---------------------------------------------------------------

    @magic_arguments("cog history")
    @_port_argument()
    def _history(self, args: Any) -> None:
        """The predictions the server keeps, newest first."""
        lines = history.history_lines(self._handle(args.port))
        print("\n".join(map(str, lines)) if lines else "nbcog: no predictions yet")

    @magic_arguments("cog snippet")
    @argument("id", nargs="?", default=None, help="a prediction id (default: placeholder inputs)")
    @argument("--lang", "-l", choices=LANGUAGES, default="curl", help="the client (curl)")
    @_port_argument()
    def _snippet(self, args: Any) -> None:
        """Code that makes prediction ID (or an example one) over Cog's HTTP API."""
        handle = self._handle(args.port)
        try:
            print(history.snippet_text(handle, args.lang, args.id))
        except (ValueError, LookupError) as exc:
            raise UsageError(str(exc)) from None


def _describe_or_fail(name: str, predictor: object) -> None:
    """Describe a predictor defined in the notebook now, failing this cell if it cannot be.

    A bad signature or an ``Input`` default that does not fit its type is then this cell's
    one-line error, naming the input, instead of a failed setup shown under it (the server
    being reloaded, if any, keeps its working code). Describing imports nothing and runs no
    user code, so a class with an ``__init__`` of its own (describing instantiates it) and a
    ``file.py:Name`` (an import) are left to setup, on its thread, as before.
    """
    from nbcog.runner.runtime import Runtime

    if inspect.isclass(predictor) and predictor.__init__ is not object.__init__:
        return
    try:
        Runtime(predictor).load()
    except Exception as exc:
        msg = f"cannot serve {name}: {type(exc).__name__}: {exc}"
        raise UsageError(msg) from None


def strip_comment(text: str) -> str:
    """Drop a trailing ``# comment``, which IPython passes on to line magics.

    As in a shell, ``#`` starts a comment only at the start of a word and outside quotes, so
    ``-i tag=a#b`` and ``-i q="#x"`` keep their values.
    """
    quote = None
    for index, char in enumerate(text):
        if quote is not None:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or text[index - 1].isspace()):
            return text[:index]
    return text


def describe_schema(predictor: PredictorSchema) -> str:
    """Inputs (type, default, description) and output type, one line each."""
    inputs = predictor.input()
    required = set(inputs.get("required", []))
    lines = ["inputs:"]
    for name, schema in inputs.get("properties", {}).items():
        merged = {**schema, **(schema.get("allOf") or [{}])[0]}
        kind = "file" if merged.get("format") == "uri" else merged.get("type", "any")
        if merged.get("type") == "array":
            items = merged.get("items", {})
            kind = f"list of {'file' if items.get('format') == 'uri' else items.get('type', 'any')}"
        if "enum" in merged:
            kind += " in " + ", ".join(map(str, merged["enum"]))
        if name in required:
            extra = ", required"
        elif "default" in merged:
            extra = f" = {json.dumps(merged['default'])}"
        else:
            extra = ""
        description = f": {merged['description']}" if merged.get("description") else ""
        lines.append(f"  {name} ({kind}{extra}){description}")
    output = predictor.predict_output or {}
    kind = output.get("type", "any")
    if output.get("x-cog-array-type") == "iterator":
        kind = "iterator of " + output.get("items", {}).get("type", "any")
    lines.append(f"output: {kind}" + (" (streams over SSE)" if predictor.streaming else ""))
    return "\n".join(lines)
