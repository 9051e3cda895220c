"""One prediction's webhooks: which of its events POST the snapshot, and the logs throttle.

A ``WebhookTracker`` lives on the serving loop thread. It decides and encodes the snapshot
*at that moment* (the prediction keeps changing after it returns) and hands the bytes to the
``WebhookSender`` (``webhooks.py``), whose threads make the requests.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from nbcog.core import events
from nbcog.core.events import Event
from nbcog.core.jsonenc import dumpb
from nbcog.core.prediction import Prediction
from nbcog.runner.webhook_rules import COMPLETED, LOGS, OUTPUT, START

if TYPE_CHECKING:
    from nbcog.runner.webhooks import WebhookSender

logger = logging.getLogger("nbcog.webhooks")

# coglet starts each prediction's throttle clock 10 s in the past so that the first logs
# webhook may go out at once. With an interval over 10 s this also drops logs for the first
# (interval - 10) s; kept for parity.
_THROTTLE_HEAD_START = 10.0


class WebhookTracker:
    """One prediction's webhook state: what was sent, and when, for the throttle.

    Use it only on the serving loop thread. Call ``observe`` after each event has been applied
    to the prediction (``completed`` after ``Prediction.finish``); it returns at once.
    """

    def __init__(
        self,
        sender: WebhookSender,
        url: str,
        events_filter: frozenset[str],
        trace_headers: dict[str, str],
    ) -> None:
        self._sender = sender
        self.url = url
        self.events_filter = events_filter
        self._headers = dict(trace_headers)
        self._last_sent = sender.clock() - _THROTTLE_HEAD_START
        self._started = False
        self._finished = False

    def observe(self, event: Event, prediction: Prediction) -> None:
        """Send the webhook ``event`` calls for, if any, with ``prediction``'s snapshot now.

        Never raises: a snapshot that cannot be encoded loses its webhook (logged), never
        the prediction's own delivery to its other subscribers.
        """
        if self._finished:
            return
        try:
            self._observe(event, prediction)
        except Exception:
            logger.warning(
                "webhook to %s not sent: its body could not be made", self.url, exc_info=True
            )

    def _observe(self, event: Event, prediction: Prediction) -> None:
        name = event.name
        if name == events.COMPLETED:
            self._finished = True
            if COMPLETED in self.events_filter:
                # The completed event *is* the terminal snapshot: reuse its encoding.
                self._sender.submit(self.url, event.json.encode(), self._headers, terminal=True)
            return
        if name == events.START:
            if self._started:
                return
            self._started = True
            kind = START
        elif name == events.OUTPUT:
            kind = OUTPUT
        elif name == events.LOG:
            kind = LOGS
        else:  # metrics never send webhooks; stream errors are not runner events
            return
        if kind not in self.events_filter:
            return
        now = self._sender.clock()
        if kind == LOGS and now - self._last_sent < self._sender.interval:
            return
        self._last_sent = now
        self._sender.submit(self.url, dumpb(prediction.snapshot()), self._headers, terminal=False)
