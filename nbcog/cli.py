"""The command line: ``python -m nbcog serve|schema REF`` (also installed as ``nbcog``).

``serve`` is ``cog serve`` without the container: Cog's HTTP predictions API for one predictor,
until Ctrl-C or ``POST /shutdown`` (both exit 0). ``schema`` prints the same JSON document that
``GET /openapi.json`` serves, which is what ``cog build`` writes to ``.cog/openapi_schema.json``,
so coglet can be run on the same file for comparisons.

REF names the predictor, as in cog.yaml:
  predict.py:Predictor     a file (relative to the current directory) and a name in it
  my_pkg.predict:Predictor a module importable from the current directory or PYTHONPATH
  (the current directory is on the import path, as under coglet, so a predictor file can
  import its sibling modules)
The name may be a class (with run() or predict(), optionally train()) or a plain function.

serve options:
  --host HOST        interface to bind; 127.0.0.1 (this machine only) unless you say otherwise
  --port N           TCP port, 5000 by default; 0 picks a free one (the URL is printed)
  --upload-url URL   PUT file outputs to URL/<name> and return their URLs instead of data URLs
  --train REF        a separate training handler (train.py:train), served on /trainings
  --no-access-log    no line per request (5xx ones are still logged)
  -q, --quiet        only failures: no access lines, no setup output or prediction logs
  --token [VALUE]    require 'Authorization: Bearer VALUE' on every route but GET /health-check
                     (default: $NBCOG_TOKEN, else none, as Cog); without VALUE a random token
                     is made and printed once
  --reload           reload on save of file.py or a local module it imports (same port;
                     in-flight predictions cancelled; a save that does not compile keeps the
                     old code serving and prints the error)

export REF DIR writes a Cog project into DIR: REF's file (and the local modules it imports),
cog.yaml (this Python, the pinned packages the code imports, predict/train, concurrency),
.cog/openapi_schema.json and a README; DIR must be empty unless --force. With --check, coglet
serves DIR from a fresh virtualenv next to nbcog serving REF, and the answers are compared
(exit 1 on any difference); -i key=value gives the prediction's inputs.

Output: what ``cog serve``'s container prints. ``nbcog: serving REF at http://HOST:PORT`` on
stderr once listening; setup()'s output as it is written (``setup: ...``), then
``nbcog: setup succeeded in 1.2 s: READY`` or, after the traceback, ``nbcog: setup failed
...`` (the server stays up and ``GET /health-check`` says SETUP_FAILED, as under coglet); each
prediction's prints and logs (``pred_...: ...``; stdout lines on stdout, the rest on stderr)
and how it ended, a failure with its traceback; one access line per request (status, method,
path, client, time).
Exit status: 0 after Ctrl-C or ``POST /shutdown``; 1 when the port is already in use (the
message names it) or, for ``schema``, when REF cannot be loaded; 2 for bad arguments.

Examples:
  python -m nbcog serve predict.py:Predictor --port 5000
  curl -s -X POST -H 'Content-Type: application/json' \\
       -d '{"input": {"text": "hi"}}' http://127.0.0.1:5000/predictions
  python -m nbcog schema predict.py:Predictor > .cog/openapi_schema.json
  python -m nbcog export predict.py:Predictor build/ --check
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from nbcog.core.inputs import CHECK_INPUT_HELP, INPUT_FLAGS, input_option
from nbcog.core.jsonenc import dumps

if TYPE_CHECKING:
    from nbcog.assembly import Server
    from nbcog.console import Console
    from nbcog.runner.watching import SourceWatcher


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m nbcog",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a predictor over Cog's HTTP API")
    serve.add_argument("ref", help="predict.py:Predictor, or module:Name")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    serve.add_argument("--port", type=int, default=5000, help="TCP port (5000; 0 = any free)")
    serve.add_argument("--upload-url", help="PUT file outputs here instead of data URLs")
    serve.add_argument("--train", help="train.py:train, served on /trainings")
    serve.add_argument("--no-access-log", action="store_true", help="no line per request")
    serve.add_argument(
        "-q", "--quiet", action="store_true", help="print only failures (no predictor output)"
    )
    serve.add_argument(
        "--token",
        nargs="?",
        const="",
        default=None,
        metavar="VALUE",
        help="require this bearer token ($NBCOG_TOKEN; no VALUE: a random one, printed once)",
    )
    serve.add_argument(
        "--reload", action="store_true", help="reload when file.py or its local modules change"
    )
    schema = commands.add_parser("schema", help="print the OpenAPI document")
    schema.add_argument("ref", help="predict.py:Predictor, or module:Name")
    schema.add_argument("--train", help="train.py:train, merged into the document")
    export = commands.add_parser("export", help="write a Cog project for cog build; --check it")
    export.add_argument("ref", help="predict.py:Predictor, or module:Name")
    export.add_argument("directory", help="where to write it (must be empty, or --force)")
    export.add_argument("--train", help="train.py:train, also in cog.yaml")
    export.add_argument("--force", action="store_true", help="replace the exported files")
    export.add_argument("--check", action="store_true", help="serve it with coglet and compare")
    export.add_argument(*INPUT_FLAGS, **input_option(CHECK_INPUT_HELP))
    return parser


def _token(value: str | None) -> tuple[str | None, bool]:
    """The token to require, and whether it was generated here (then it must be printed)."""
    from nbcog.http.auth import TOKEN_ENV, new_token

    if value is None:
        return os.environ.get(TOKEN_ENV) or None, False
    return (value, False) if value else (new_token(), True)


def _serve(args: argparse.Namespace) -> int:
    from nbcog.assembly import Server
    from nbcog.console import Console
    from nbcog.http.auth import exposure_warning
    from nbcog.http.server import PortInUse

    # Taken before setup's log capture wraps the streams (writing through it would work too).
    console = Console(sys.stdout, sys.stderr, predictor_output=not args.quiet)

    token, generated = _token(args.token)
    server = Server(
        args.ref,
        train=args.train,
        host=args.host,
        port=args.port,
        upload_url=args.upload_url,
        token=token,
    )

    async def serve() -> None:
        server.start()
        print(f"nbcog: serving {args.ref} at {server.url}", file=sys.stderr, flush=True)
        if generated:
            print(f"nbcog: token (shown once): {token}", file=sys.stderr, flush=True)
        warning = exposure_warning(args.host, token)
        if warning:
            print(warning, file=sys.stderr, flush=True)
        assert server.service is not None
        console.attach(server.service)
        watcher = _watch(server, args.ref, console) if args.reload else None
        try:
            await server.serve_until_stopped()
        finally:  # Ctrl-C cancels this task: stop while the loop still runs
            if watcher is not None:
                watcher.stop()
            server.stop()
            await server.wait_closed()  # clients answered, webhooks drained (<= 5 s)

    if args.reload:
        from nbcog.runner.watching import predictor_file

        try:
            predictor_file(args.ref)
        except ValueError as exc:
            print(f"nbcog: {exc}", file=sys.stderr)
            return 2
    try:
        asyncio.run(serve())
    except PortInUse as exc:
        print(f"nbcog: {exc.strerror}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nbcog: stopped", file=sys.stderr)
    return 0


def _export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nbcog.export import CheckFailed, ExportError, export_and_check, export_reference

    directory = Path(args.directory)
    target = args.ref.partition(":")[0]
    if target.endswith(".py"):  # its siblings import as they will in the project (--check)
        sys.path.insert(0, str(Path(target).resolve().parent))
    if args.input and not args.check:
        print("nbcog: -i gives the inputs of --check's prediction: add --check", file=sys.stderr)
        return 2

    try:
        export_and_check(
            directory,
            lambda: export_reference(directory, args.ref, train=args.train, force=args.force),
            args.ref,
            train=args.train,
            check_it=args.check,
            force=args.force,
            inputs=args.input or (),  # the same -i rules as %cog predict
            say=lambda line: print(line, flush=True),
        )
    except (ExportError, CheckFailed) as exc:
        print(f"nbcog: {exc}", file=sys.stderr)
        return 1
    return 0


def _say(message: str) -> None:
    print(f"nbcog: {message}", file=sys.stderr, flush=True)


def _watch(server: Server, ref: str, console: Console) -> SourceWatcher:
    """Reload ``server`` (on its loop) after each save that compiles; report each save once.

    The new service is attached to ``console``, which prints its setup and predictions.
    """
    from nbcog.runner.watching import Save, SourceWatcher, forget_local_modules

    loop = asyncio.get_running_loop()

    def apply(save: Save) -> None:
        if not server.running:
            return
        if save.error is not None:
            _say(f"{save.names} saved, not reloaded (the old code keeps serving):\n{save.error}")
            return
        forget_local_modules(watcher.folder)
        cancelled = server.reload(ref)
        fate = f"cancelled {len(cancelled)} in flight" if cancelled else "none was in flight"
        _say(f"{save.names} saved: reloaded {ref} at {server.url} (same port); {fate}")
        assert server.service is not None
        console.attach(server.service)

    def on_save(save: Save) -> None:  # on the watcher's thread
        loop.call_soon_threadsafe(apply, save)

    def on_ready() -> None:  # on the watcher's thread, once its OS watch is in place
        files = ", ".join(path.name for path in watcher.watched())
        loop.call_soon_threadsafe(
            _say, f"reloading on save of {files} (and the local modules it imports)"
        )

    watcher = SourceWatcher(ref, on_save, on_ready)
    watcher.start()
    return watcher


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    args = _parser().parse_args(argv)
    if os.getcwd() not in sys.path and "" not in sys.path:
        # The ``nbcog`` console script, unlike ``python -m``, leaves the cwd off sys.path.
        sys.path.insert(0, os.getcwd())
    if args.command == "schema":
        from nbcog.runner.runtime import Runtime

        runtime = Runtime(args.ref, train=args.train)
        try:
            runtime.load()
        except Exception as exc:
            print(f"nbcog: cannot load {args.ref}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        print(dumps(runtime.openapi()))
        return 0
    if args.command == "export":
        return _export(args)
    # nbcog's and tornado's own records only: the root logger stays unconfigured, so a
    # predictor's logging reaches its logs as it would under coglet (via logging.lastResort).
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    for name in ("nbcog", "tornado"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    if args.no_access_log or args.quiet:
        # tornado logs 2xx/3xx at INFO, 4xx at WARNING and 5xx at ERROR.
        logging.getLogger("tornado.access").setLevel(logging.ERROR)
    return _serve(args)
