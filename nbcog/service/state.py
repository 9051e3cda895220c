"""``PredictionState``: the read-only face of a ``Prediction`` that front ends are typed with.

The service's delivery is the only writer of a prediction (``apply``, ``finish``). Front ends
read it, through ``PredictionRef.prediction`` or ``PredictionService.recent``, typed with this
protocol: a ``Prediction`` satisfies it, and a front end that tried to change one would fail
the type check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from nbcog.core.prediction import Status


class PredictionState(Protocol):
    """What a front end may read of a prediction: its fields, its views, never its setters."""

    @property
    def id(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def input(self) -> Mapping[str, Any]: ...

    @property
    def created_at(self) -> float: ...

    @property
    def status(self) -> Status: ...

    @property
    def chunks(self) -> Sequence[Any]: ...

    @property
    def metrics(self) -> Mapping[str, Any]: ...

    @property
    def error(self) -> str | None: ...

    @property
    def output(self) -> Any: ...

    @property
    def is_terminal(self) -> bool: ...

    @property
    def logs(self) -> str: ...

    @property
    def predict_time(self) -> float | None: ...

    def snapshot(
        self, *, with_input: bool = False, partial_output: bool = True
    ) -> dict[str, Any]: ...

    def sync_body(self) -> dict[str, Any]: ...
