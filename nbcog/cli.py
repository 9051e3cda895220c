"""The command line: ``python -m nbcog serve|schema REF``.

``serve`` is ``cog serve`` without the container: the same HTTP API on 127.0.0.1:5000 by
default. ``schema`` prints the OpenAPI document that ``GET /openapi.json`` serves, in the shape
``cog build`` writes to ``.cog/openapi_schema.json`` (so coglet can be run on the same file).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from nbcog.core.jsonenc import dumps


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nbcog", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a predictor over Cog's HTTP API")
    serve.add_argument("ref", help="predict.py:Predictor, or module:Name")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    serve.add_argument("--port", type=int, default=5000, help="TCP port (5000; 0 = any free)")
    serve.add_argument("--upload-url", help="PUT file outputs here instead of data URLs")
    serve.add_argument("--train", help="train.py:train, served on /trainings")
    schema = commands.add_parser("schema", help="print the OpenAPI document")
    schema.add_argument("ref", help="predict.py:Predictor, or module:Name")
    schema.add_argument("--train", help="train.py:train, merged into the document")
    return parser


def _serve(args: argparse.Namespace) -> int:
    from nbcog.http.server import PortInUse, Server

    server = Server(
        args.ref, train=args.train, host=args.host, port=args.port, upload_url=args.upload_url
    )

    async def serve() -> None:
        server.start()
        print(f"nbcog: serving {args.ref} at {server.url}", file=sys.stderr, flush=True)
        await server.serve_until_stopped()

    try:
        asyncio.run(serve())
    except PortInUse as exc:
        print(f"nbcog: {exc.strerror}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        server.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    args = _parser().parse_args(argv)
    if args.command == "schema":
        from nbcog.runner.runtime import Runtime

        runtime = Runtime(args.ref, train=args.train)
        try:
            runtime.load()
        except Exception as exc:  # noqa: BLE001 - a clear one-line error, not a traceback
            print(f"nbcog: cannot load {args.ref}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        print(dumps(runtime.openapi()))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return _serve(args)
