"""``%cog history``, ``%cog predict --again ID``, ``%cog snippet``: a server's recent predictions.

The history is the service's own: the predictions in flight and the finished ones it keeps
(``PredictionService.recent``, bounded). Each keeps its input as the server received it, so
file inputs (their ``data:`` or ``http`` URLs) are re-sent as they were. A ``Secret`` input is
masked by the service before it is stored, so it is never in the history, in a snippet or in
a saved notebook; re-running a prediction that had one asks for it again (``-i name=...``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbcog.core import snippets
from nbcog.core.inputs import example_input
from nbcog.kernel.report import snippet_target
from nbcog.service import PredictionState

if TYPE_CHECKING:
    from nbcog.kernel.handle import ServerHandle

SHOWN_CHARS = 60
SECRET_SHOWN = "<secret>"  # noqa: S105 - what the history shows instead of a secret


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    if isinstance(value, str) and value.startswith("data:"):
        text = f"{value.split(',', 1)[0]},... ({len(value)} chars)"
    text = repr(text) if isinstance(value, str) else text
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


@dataclass(frozen=True)
class HistoryLine:
    """One prediction of ``%cog history``."""

    id: str
    kind: str
    status: str
    seconds: float | None
    inputs: str
    output: str

    def __str__(self) -> str:
        took = f"{self.seconds:.2f} s" if self.seconds is not None else "-"
        kind = "" if self.kind == "prediction" else f" ({self.kind})"
        return f"{self.id}{kind}  {self.status:<10} {took:>8}  {self.inputs}  -> {self.output}"


def predictions(handle: ServerHandle) -> list[PredictionState]:
    """In flight first, then the finished ones the service keeps; newest first in each."""

    def collect() -> list[PredictionState]:
        service = handle.service()
        running = [entry.prediction for entry in service.inflight()]
        running.sort(key=lambda p: p.created_at, reverse=True)
        return running + list(service.recent)

    return handle.run_on_loop(collect)


def find(handle: ServerHandle, prediction_id: str) -> PredictionState:
    """The prediction ``prediction_id`` of ``handle``'s server.

    Raises:
        LookupError: the server does not know it (never seen, or no longer kept).
    """
    for prediction in predictions(handle):
        if prediction.id == prediction_id:
            return prediction
    msg = (
        f"no prediction {prediction_id!r} on {handle.label}: `%cog history` lists the ones it keeps"
    )
    raise LookupError(msg)


def shown_inputs(prediction: PredictionState, secrets: tuple[str, ...]) -> dict[str, Any]:
    """A prediction's inputs for display: secrets as ``<secret>``."""
    return {k: SECRET_SHOWN if k in secrets else v for k, v in prediction.input.items()}


def history_lines(handle: ServerHandle) -> list[HistoryLine]:
    """What ``%cog history`` prints, newest first."""
    schema = handle.schema()
    secrets = schema.secret_inputs() if schema is not None else ()
    lines = []
    for prediction in predictions(handle):
        inputs = shown_inputs(prediction, secrets)
        described = ", ".join(f"{k}={_short(v)}" for k, v in inputs.items()) or "(no input)"
        output = prediction.error if prediction.error else prediction.snapshot().get("output")
        lines.append(
            HistoryLine(
                prediction.id,
                prediction.kind,
                prediction.status.value,
                prediction.predict_time,
                described,
                _short(output) if output is not None else "-",
            )
        )
    return lines


def rerun_inputs(
    prediction: PredictionState, overrides: Mapping[str, Any], secrets: tuple[str, ...]
) -> dict[str, Any]:
    """``prediction``'s inputs with ``overrides`` applied; a Secret must be given again.

    Raises:
        ValueError: a Secret input of ``prediction`` is not in ``overrides``.
    """
    missing = [name for name in prediction.input if name in secrets and name not in overrides]
    if missing:
        given = " ".join(f"-i {name}=..." for name in missing)
        msg = (
            f"{prediction.id} had the secret input {', '.join(map(repr, missing))}, which is "
            f"never stored: give it again ({given})"
        )
        raise ValueError(msg)
    kept = {k: v for k, v in prediction.input.items() if k not in secrets}
    return {**kept, **overrides}


def snippet_text(handle: ServerHandle, language: str, prediction_id: str | None) -> str:
    """``%cog snippet``: code for ``prediction_id``'s request, or for the served model.

    Raises:
        LookupError: an unknown prediction id.
        ValueError: an unknown language, or no schema yet (setup has not succeeded).
    """
    schema = handle.schema()
    if schema is None:
        msg = f"{handle.label} has no schema yet: setup has not succeeded (%cog status)"
        raise ValueError(msg)
    target = snippet_target(handle.public_url, schema, handle.token)
    if prediction_id is None:
        return snippets.snippet(language, target, example_input(schema.input()))
    prediction = find(handle, prediction_id)
    if prediction.kind == "training":
        target = snippets.Target(
            target.url, token=target.token, training=True, secrets=target.secrets
        )
    return snippets.snippet(language, target, prediction.input)
