"""The predictions one service knows: ids, the in-flight ones, who listens, the recent ones.

In flight: id -> ``InFlight`` and the count of busy slots, both changed only by ``add`` and
``release`` so they never disagree. Finished predictions leave at once (a finished id is
unknown to GET, PUT and cancel, coglet's rule); the newest are kept in ``recent`` for status
displays, within a count and a byte budget.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

from nbcog.core.events import Event
from nbcog.core.prediction import Prediction
from nbcog.service.inflight import InFlight, PredictionRef
from nbcog.service.settings import RECENT_LIMIT

log = logging.getLogger("nbcog")

Listener = Callable[[str, PredictionRef], None]
Observer = Callable[[PredictionRef, list[Event]], None]


class Registry:
    """Ids, in-flight predictions, listeners and the recent finished predictions.

    Args:
        recent_bytes: memory budget (``Prediction.retained_bytes``) of ``recent``, besides
            the ``RECENT_LIMIT`` count.
    """

    def __init__(self, recent_bytes: int) -> None:
        self.recent_bytes = recent_bytes
        self._inflight: dict[str, InFlight] = {}
        self._busy = 0
        self._last_id = 0
        self._recent: deque[Prediction] = deque()
        self._recent_sizes: deque[int] = deque()  # retained_bytes of each, same order
        self._recent_total = 0
        self._listeners: list[Listener] = []
        self.observers: list[Observer] = []

    # -- ids and in flight -----------------------------------------------------------------

    def new_id(self) -> str:
        """``pred_`` + lowercase hex of Unix time in ns, strictly increasing (so unique)."""
        now = max(time.time_ns(), self._last_id + 1)
        self._last_id = now
        return f"pred_{now:x}"

    @property
    def busy(self) -> int:
        """Slots taken by predictions in flight."""
        return self._busy

    def get(self, prediction_id: str) -> InFlight | None:
        """The in-flight prediction with this id."""
        return self._inflight.get(prediction_id)

    def inflight(self) -> list[InFlight]:
        """Predictions running now, oldest first."""
        return list(self._inflight.values())

    def add(self, entry: InFlight) -> None:
        """A prediction started: it takes a slot."""
        self._inflight[entry.prediction.id] = entry
        self._busy += 1

    def release(self, entry: InFlight) -> None:
        """A prediction ended: its slot is free and its id unknown (no-op the second time)."""
        if self._inflight.get(entry.prediction.id) is entry:
            del self._inflight[entry.prediction.id]
            self._busy -= 1

    # -- listeners -------------------------------------------------------------------------

    def add_listener(self, callback: Listener) -> Callable[[], None]:
        """Add a listener; returns a function that removes it."""
        self._listeners.append(callback)

        def remove() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return remove

    def notify(self, kind: str, entry: InFlight) -> None:
        """Tell every listener; one that raises is logged, never allowed to break a prediction."""
        for listener in list(self._listeners):
            try:
                listener(kind, entry.ref)
            except Exception:
                log.exception("nbcog prediction listener failed")

    # -- the recent finished predictions ---------------------------------------------------

    @property
    def recent(self) -> Sequence[Prediction]:
        """The finished predictions kept, newest first."""
        return self._recent

    @property
    def recent_retained_bytes(self) -> int:
        """What the kept predictions retain together (at most ``recent_bytes``)."""
        return self._recent_total

    def remember(self, prediction: Prediction) -> None:
        """Keep a finished prediction: the newest ``RECENT_LIMIT`` that fit in
        ``recent_bytes`` together, oldest evicted first.

        Without the byte budget, the last 100 predictions of a 50 MiB echo each would pin
        10 GB in a kernel that holds the user's model too. A prediction bigger than the whole
        budget is not kept at all. Nothing else depends on ``recent``: a finished id is
        unknown to GET, PUT and cancel whether or not it is still listed here (coglet's rule).
        """
        size = prediction.retained_bytes()
        if size > self.recent_bytes:
            return  # keeping it would evict every other one and still not fit
        self._recent.appendleft(prediction)
        self._recent_sizes.appendleft(size)
        self._recent_total += size
        while self._recent and (
            self._recent_total > self.recent_bytes or len(self._recent) > RECENT_LIMIT
        ):
            self._recent.pop()
            self._recent_total -= self._recent_sizes.pop()
