"""What the notebook is told: where the server is, how setup goes, and ``%cog status``.

Setup runs on a thread after ``%cog serve`` has returned, so its progress is shown in a display
that the serving loop updates in place (``display_id``): running (with the logs so far), then
ready (with a ready-to-copy ``curl`` line built from the schema) or failed (with the error).
Outside a kernel (IPython in a terminal, a script) only the final state is printed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nbcog.core import snippets
from nbcog.core.failures import failure_reason
from nbcog.core.inputs import example_input
from nbcog.core.schema import PredictorSchema
from nbcog.core.snippets import Target
from nbcog.core.urls import PROXY_SSE_NOTE
from nbcog.kernel.lag import Lag
from nbcog.kernel.render import Text
from nbcog.service import Health, PredictionService

POLL_INTERVAL = 0.25
LOG_TAIL_LINES = 30
STATUS_LOG_LINES = 200

LOOP_NOTE = (
    "note: this server runs on the kernel's event loop: it answers while the kernel is idle "
    "or a cell awaits, but a cell that blocks without awaiting (time.sleep, a long loop) pauses "
    "it until the cell ends. `%cog status` shows the loop lag; `%cog serve NAME --thread` "
    "serves from a thread of its own instead."
)


def snippet_target(url: str, schema: PredictorSchema, token: str | None = None) -> Target:
    """Where snippets for the served model send their requests, and how."""
    return Target(url, token=token, streaming=schema.streaming, secrets=schema.secret_inputs())


def curl_lines(url: str, schema: PredictorSchema, token: str | None = None) -> list[str]:
    """A sync ``curl`` command with placeholder inputs, and an SSE one when the model streams."""
    target = snippet_target(url, schema, token)
    example = example_input(schema.input())
    commands = [snippets.curl(target, example)]
    if target.sse:
        commands.append(snippets.curl(target, example, sse=True))
    return commands


def _indent(text: str, lines: int = LOG_TAIL_LINES) -> list[str]:
    tail = text.rstrip("\n").splitlines()[-lines:]
    return [f"  | {line}" for line in tail]


def _setup_logs(setup: Mapping[str, Any]) -> list[str]:
    """The setup logs for ``%cog status`` while setup runs or after it failed (its traceback).

    A failed setup is why ``%cog predict`` sends the user here, so its logs are shown up to
    ``STATUS_LOG_LINES``; a running one shows its last lines. After a successful setup they
    stay in the serving cell and in ``health['setup']['logs']``.
    """
    logs = setup.get("logs", "")
    status = setup.get("status")
    if not logs or status not in ("failed", "starting"):
        return []
    limit = STATUS_LOG_LINES if status == "failed" else LOG_TAIL_LINES
    total = len(logs.rstrip("\n").splitlines())
    head = "  setup logs:" if status == "failed" else "  setup logs so far:"
    if total > limit:
        head += f" (the last {limit} of {total}; all in status().health['setup']['logs'])"
    return [head, *_indent(logs, limit)]


def _in_kernel() -> bool:
    from IPython.core.getipython import get_ipython

    return getattr(get_ipython(), "kernel", None) is not None


class SetupView:
    """Shows one setup's progress; create it in the serving cell, ``watch`` on the loop."""

    def __init__(
        self,
        label: str,
        url: str,
        token: str | None = None,
        *,
        handle: Any = None,
        heading: str | None = None,
    ) -> None:
        """``handle``: an existing display to update (a reload on save reuses the serving
        cell's); ``heading``: a line shown above the progress."""
        self._label = label
        self._url = url
        self._token = token
        self._heading = heading
        self._started = time.monotonic()
        self._shown_logs: str | None = None
        self._handle: Any = handle
        if handle is None and _in_kernel():
            from IPython.display import display

            self._handle = display(Text(f"setup of {label}: starting"), display_id=True)

    def watch(
        self,
        loop: asyncio.AbstractEventLoop,
        service: PredictionService,
        still_current: Callable[[], bool],
    ) -> None:
        """Poll ``service`` on its loop (call there) until setup ends, or it is replaced."""

        def poll() -> None:
            if not still_current():
                return
            if service.health is Health.STARTING:
                logs = service.runtime.setup_logs
                if logs != self._shown_logs and self._handle is not None:
                    self._shown_logs = logs
                    self._show(self._running_text(logs))
                loop.call_later(POLL_INTERVAL, poll)
                return
            self._show(self._final_text(service), final=True)

        poll()

    def _running_text(self, logs: str) -> str:
        elapsed = time.monotonic() - self._started
        return "\n".join([f"setup of {self._label}: running for {elapsed:.1f} s", *_indent(logs)])

    def _final_text(self, service: PredictionService) -> str:
        elapsed = time.monotonic() - self._started
        logs = service.runtime.setup_logs
        if service.health is Health.SETUP_FAILED:
            head = f"setup of {self._label} failed after {elapsed:.1f} s: SETUP_FAILED"
            return "\n".join([head, *_indent(logs)])
        lines = [f"setup of {self._label} succeeded in {elapsed:.1f} s: ready at {self._url}"]
        if service.schema is not None:
            for command in curl_lines(self._url, service.schema, self._token):
                lines += [f"  {line}" for line in command.splitlines()]
        return "\n".join(lines + _indent(logs))

    def _show(self, text: str, *, final: bool = False) -> None:
        if self._heading:
            text = f"{self._heading}\n{text}"
        if self._handle is not None:
            self._handle.update(Text(text))
        elif final:
            print(text, flush=True)


@dataclass(frozen=True)
class PredictionLine:
    """One prediction in ``%cog status``."""

    id: str
    status: str
    seconds: float
    error: str | None = None

    def __str__(self) -> str:
        verb = "for" if self.status in ("starting", "processing") else "in"
        text = f"{self.id} {self.status} {verb} {self.seconds:.2f} s"
        return text + (f": {failure_reason(self.error)}" if self.error else "")


@dataclass(frozen=True)
class ServerStatus:
    """A server at one moment: what ``%cog status`` prints and ``handle.status()`` returns."""

    label: str
    url: str
    proxy_url: str | None
    mode: str
    running: bool
    health: dict[str, Any]
    in_flight: list[PredictionLine] = field(default_factory=list)
    recent: list[PredictionLine] = field(default_factory=list)
    lag: Lag | None = None
    reloads: int = 0

    def __str__(self) -> str:
        if not self.running:
            return f"{self.label} at {self.url}: stopped"
        reloaded = f"; reloaded {self.reloads}x" if self.reloads else ""
        lines = [f"{self.label} at {self.url} ({self.mode}{reloaded})"]
        if self.proxy_url:
            lines.append(f"  proxy:     {self.proxy_url}  ({PROXY_SSE_NOTE})")
        setup = self.health.get("setup", {})
        lines.append(
            f"  health:    {self.health['status']} (setup {setup.get('status', 'not started')})"
        )
        in_flight = "; ".join(map(str, self.in_flight)) or "none"
        lines.append(f"  in flight: {in_flight}")
        recent = "; ".join(map(str, self.recent)) or "none"
        lines.append(f"  recent:    {recent}")
        if self.lag is not None:
            lines.append(
                f"  loop lag:  {self.lag.last * 1000:.1f} ms now, {self.lag.worst * 1000:.1f} ms "
                f"worst in the last {self.lag.window:.0f} s"
            )
        return "\n".join(lines + _setup_logs(setup))

    def _repr_pretty_(self, printer: Any, _cycle: bool) -> None:
        printer.text(str(self))
