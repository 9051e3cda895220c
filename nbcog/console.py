"""What ``python -m nbcog serve`` prints: what ``cog serve``'s container shows in its terminal.

A person running a predictor from a terminal looks there first, so everything the predictor
writes and every way it fails is printed as it happens:

* setup output, line by line: ``setup: loading weights`` (stdout lines on stdout, stderr
  lines, the traceback of a failed setup included, on stderr);
* the end of setup: ``nbcog: setup succeeded in 1.2 s: READY``, or ``nbcog: setup failed
  after 0.3 s: SETUP_FAILED ...`` (the server stays up and ``/health-check`` says
  ``SETUP_FAILED``, as coglet's does);
* each prediction's prints and logs, every line prefixed by its id: ``pred_18f...: step 1``;
* how each prediction ended: ``nbcog: pred_18f... succeeded in 0.31 s``, or ``failed:`` with
  the error and the traceback from the user's first frame.

The per-request access lines are tornado's ``tornado.access`` log, configured by the CLI.
With ``predictor_output=False`` (``--quiet``) only the end of setup and failures are printed
(a failed setup's logs with it).

Everything is written on the serving loop's thread, where no log capture is active, so it
reaches the terminal instead of a prediction's logs. coglet 0.23.1 prints JSON log records
instead (``{"fields": {"message": "loading weights", "source": "Stdout"}, "target":
"coglet::setup", ...}``) and no traceback; nbcog prints the same facts for a person to read.
"""

from __future__ import annotations

import contextlib
import time
from typing import TextIO

from nbcog.core import events
from nbcog.core.events import Event
from nbcog.core.prediction import Status
from nbcog.service import Health, PredictionRef, PredictionService

SETUP_PREFIX = "setup: "


def prefixed(prefix: str, text: str) -> str:
    """Every line of ``text`` (a log chunk, maybe without a final newline) after ``prefix``."""
    body = text[:-1] if text.endswith("\n") else text
    return "".join(f"{prefix}{line}\n" for line in body.split("\n"))


class Console:
    """Prints one service's setup, predictions and failures to a terminal.

    Args:
        out: where the predictor's stdout lines go.
        err: where its stderr lines and nbcog's own lines go.
        predictor_output: print setup output, prediction logs and successful ends
            (``--quiet`` turns it off; failures are always printed).
    """

    def __init__(self, out: TextIO, err: TextIO, *, predictor_output: bool = True) -> None:
        self._out = out
        self._err = err
        self._predictor_output = predictor_output

    def attach(self, service: PredictionService) -> None:
        """Follow ``service`` from now on (call on its loop, right after ``service.start()``)."""
        started = time.monotonic()
        loop = service.loop

        def from_setup_thread(source: str, text: str) -> None:
            # A closed loop means the server is gone and nobody reads: drop the chunk.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._setup_output, source, text)

        if self._predictor_output:
            for source, text in service.runtime.follow_setup_logs(from_setup_thread):
                self._setup_output(source, text)
        service.on_setup_done(lambda health: self._setup_done(service, health, started))
        service.add_listener(self._on_prediction)
        if self._predictor_output:
            service.observe_events(self._on_events)

    def _write(self, stream: TextIO, text: str) -> None:
        # A terminal that went away (a closed pipe) must not break a prediction's delivery.
        with contextlib.suppress(OSError, ValueError):
            stream.write(text)
            stream.flush()

    def _setup_output(self, source: str, text: str) -> None:
        self._write(self._err if source == "stderr" else self._out, prefixed(SETUP_PREFIX, text))

    def _setup_done(self, service: PredictionService, health: Health, started: float) -> None:
        elapsed = time.monotonic() - started
        if health is not Health.SETUP_FAILED:
            self._write(self._err, f"nbcog: setup succeeded in {elapsed:.1f} s: READY\n")
            return
        logs = "" if self._predictor_output else prefixed(SETUP_PREFIX, service.runtime.setup_logs)
        self._write(
            self._err,
            f"{logs}nbcog: setup failed after {elapsed:.1f} s: SETUP_FAILED (the server stays "
            "up; GET /health-check has the setup logs)\n",
        )

    # -- predictions ---------------------------------------------------------------------

    def _on_prediction(self, kind: str, ref: PredictionRef) -> None:
        if kind == "finished":
            self._ended(ref)

    def _on_events(self, ref: PredictionRef, batch: list[Event]) -> None:
        prefix = f"{ref.prediction.id}: "
        for event in batch:
            if event.name == events.LOG:
                stream = self._err if event.data["source"] == "stderr" else self._out
                self._write(stream, prefixed(prefix, event.data["data"]))

    def _ended(self, ref: PredictionRef) -> None:
        prediction = ref.prediction
        seconds = prediction.predict_time or 0.0
        if prediction.status is Status.FAILED:
            trace = ref.traceback
            detail = "\n" + prefixed("  ", trace) if trace else f" {prediction.error}\n"
            self._write(self._err, f"nbcog: {prediction.id} failed after {seconds:.2f} s:{detail}")
        elif self._predictor_output:
            status = prediction.status.value
            self._write(self._err, f"nbcog: {prediction.id} {status} in {seconds:.2f} s\n")
