"""Webhook delivery: which prediction events POST the snapshot, throttling and retries (spec §15).

The rules are coglet 0.23.1's (``crates/coglet/src/webhook.rs``):

* ``start`` is sent once and ``output`` on every chunk; neither is throttled, but both reset
  the throttle clock.
* ``logs`` is sent only when ``COG_THROTTLE_RESPONSE_INTERVAL`` (default 0.5 s) has passed since
  the last non-terminal webhook of any type; otherwise it is *dropped*, never delayed (later
  payloads carry the accumulated logs).
* ``completed`` is always sent, retried on network errors and 429/500/502/503/504 up to 12
  times, retry *n* first waiting ``0.1 * 2**min(n, 10)`` s; any other non-2xx status stops.
* ``metric`` events never send anything. Events outside ``webhook_events_filter`` are neither
  sent nor counted by the throttle.

Threads: a ``WebhookTracker`` is used only on the serving loop thread, where it decides and
encodes the snapshot *at that moment* (the prediction keeps changing after it returns). The
HTTP requests run on the sender's delivery threads, so a slow or dead receiver never holds up
the loop, and a retry's backoff waits in a schedule, not on a thread, so dead receivers never
hold up live ones. Non-terminal webhooks may therefore arrive out of order, as with coglet.
Failures are logged (logger ``nbcog.webhooks``) and never raised, and never change the prediction.

This module is the sender (threads, pending cap, retry schedule); the policy's numbers are in
``webhook_rules.py`` and the per-prediction decisions in ``webhook_tracker.py``. Every name is
importable from here.
"""

from __future__ import annotations

import heapq
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

from nbcog.runner.webhook_rules import (
    ALL_EVENTS,
    DEFAULT_THROTTLE_INTERVAL,
    MAX_PENDING,
    MAX_RETRIES,
    REQUEST_TIMEOUT,
    RETRY_STATUSES,
    backoff_delay,
    throttle_interval,
)
from nbcog.runner.webhook_tracker import WebhookTracker

__all__ = [
    "ALL_EVENTS",
    "DEFAULT_THROTTLE_INTERVAL",
    "MAX_PENDING",
    "MAX_RETRIES",
    "REQUEST_TIMEOUT",
    "RETRY_STATUSES",
    "WebhookSender",
    "WebhookTracker",
    "backoff_delay",
    "throttle_interval",
]

logger = logging.getLogger("nbcog.webhooks")

MAX_THREADS = 32
_EXTRA_IDLE = 10.0


class WebhookSender:
    """Owns the delivery threads and the settings shared by every prediction's webhooks.

    Args:
        user_agent: the ``User-Agent`` header, ``nbcog/<version>``.
        max_workers: delivery threads kept at all times. Each makes one request at a time
            and none ever waits out a backoff. When all are busy (receivers that accept and
            never answer hold one for up to ``REQUEST_TIMEOUT``), a new delivery gets an
            extra thread, up to ``max_threads``; extras exit after 10 s idle.
        max_threads: the most delivery threads at once.
        clock: monotonic seconds, for the logs throttle.
        backoff: seconds to wait before retry ``n`` of a ``completed`` webhook (coglet's
            ``backoff_delay``; tests pass one that records and returns 0).
        max_pending: deliveries that may wait at once (queued, in backoff or on the wire).

    Retries wait in a schedule (a heap served by one timer thread), not on a delivery
    thread, so a live receiver is called at once whatever dead ones do, unless
    ``max_threads`` receivers at once accept connections and never answer.

    Past ``max_pending`` a new ``start``/``output``/``logs`` webhook is dropped (later ones
    carry its content anyway); a new ``completed`` webhook takes the place of the retry
    due last (the receiver that has failed longest), or is dropped when no retry is
    waiting. Each drop is logged as a warning. Memory therefore stays bounded whatever the
    receivers do, at the cost of the oldest failures' last retries.

    The threads are daemon threads, not a ``ThreadPoolExecutor``'s: the interpreter joins
    those at exit, and a kernel shutting down must not wait minutes for a dead receiver.
    ``WEBHOOK_AUTH_TOKEN`` and ``COG_THROTTLE_RESPONSE_INTERVAL`` are read once, here.
    """

    def __init__(
        self,
        *,
        user_agent: str,
        max_workers: int = 4,
        max_threads: int = MAX_THREADS,
        clock: Callable[[], float] = time.monotonic,
        backoff: Callable[[int], float] = backoff_delay,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.interval = throttle_interval(os.environ.get("COG_THROTTLE_RESPONSE_INTERVAL"))
        self._headers = {"Content-Type": "application/json", "User-Agent": user_agent}
        token = os.environ.get("WEBHOOK_AUTH_TOKEN")
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token}"
        self.clock = clock
        self._backoff = backoff
        self._max_pending = max_pending
        self._closing = threading.Event()
        self._queue: queue.SimpleQueue[_Delivery | None] = queue.SimpleQueue()
        # Everything below is guarded by _state: the pending count and the retry schedule.
        self._state = threading.Condition()
        self._pending = 0
        self._retries: list[tuple[float, int, _Delivery]] = []  # a heap of (due, seq, delivery)
        self._seq = 0
        self.dropped = 0
        self._max_threads = max(max_threads, max_workers)
        self._workers: list[threading.Thread] = []
        self._waiting = 0  # workers waiting for a delivery (or about to)
        self._queued = 0  # deliveries on the queue, not yet taken
        self._timer = threading.Thread(
            target=self._schedule, name="nbcog-webhook-retry", daemon=True
        )
        self._timer.start()
        with self._state:
            for _ in range(max_workers):
                self._spawn(extra=False)

    def track(
        self,
        url: str,
        events_filter: frozenset[str] | None,
        trace_headers: dict[str, str],
    ) -> WebhookTracker:
        """Start following one prediction that asked for webhooks at ``url``.

        Args:
            url: the request's ``webhook``.
            events_filter: the request's ``webhook_events_filter`` (already validated), or None
                for all four events.
            trace_headers: ``traceparent``/``tracestate`` from the create request, sent as
                given with every delivery.
        """
        return WebhookTracker(
            self, url, ALL_EVENTS if events_filter is None else events_filter, trace_headers
        )

    @property
    def pending(self) -> int:
        """Deliveries queued, waiting for a retry or on the wire."""
        with self._state:
            return self._pending

    @property
    def retrying(self) -> int:
        """``completed`` webhooks waiting in the schedule for their next retry."""
        with self._state:
            return len(self._retries)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued delivery has finished; False if ``timeout`` ran out first."""
        with self._state:
            return self._state.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Give queued deliveries ``timeout`` seconds, then drop the rest and stop the threads.

        Retries still waiting are abandoned; a request already on the wire finishes (or times
        out) in the background. Deliveries submitted afterwards are dropped.
        """
        self.drain(timeout)
        self._closing.set()
        with self._state:
            for _, _, delivery in self._retries:
                logger.warning("completed webhook to %s abandoned: the sender closed", delivery.url)
            self._done(len(self._retries))
            self._retries = []
            self._state.notify_all()
            workers = len(self._workers)
        for _ in range(workers):
            self._queue.put(None)

    def submit(self, url: str, body: bytes, headers: dict[str, str], *, terminal: bool) -> None:
        """Queue one delivery of ``body`` (the tracker's half of the job)."""
        if self._closing.is_set():
            logger.warning("webhook to %s dropped: the webhook sender is closed", url)
            return
        with self._state:
            if self._pending >= self._max_pending and not self._make_room(url, terminal=terminal):
                return
            self._pending += 1
            self._enqueue(_Delivery(url, body, {**self._headers, **headers}, terminal))

    def _make_room(self, url: str, *, terminal: bool) -> bool:
        """At the bound (``_state`` held): abandon the retry due last for a terminal webhook."""
        self.dropped += 1
        if terminal and self._retries:
            latest = max(self._retries)
            self._retries.remove(latest)
            heapq.heapify(self._retries)
            self._pending -= 1
            logger.warning(
                "completed webhook to %s abandoned: %d webhooks pending, making room for one to %s",
                latest[2].url,
                self._max_pending,
                url,
            )
            return True
        logger.warning("webhook to %s dropped: %d webhooks already pending", url, self._max_pending)
        return False

    def _done(self, count: int = 1) -> None:
        """``count`` deliveries have ended (``_state`` held)."""
        self._pending -= count
        if self._pending == 0:
            self._state.notify_all()

    # -- threads -----------------------------------------------------------------------

    def _enqueue(self, delivery: _Delivery) -> None:
        """Queue ``delivery``; start a thread if no waiting worker is free (``_state`` held)."""
        self._queue.put(delivery)
        self._queued += 1
        if (
            self._queued > self._waiting
            and len(self._workers) < self._max_threads
            and not self._closing.is_set()
        ):
            self._spawn(extra=True)

    def _spawn(self, *, extra: bool) -> None:
        """Start a delivery thread (``_state`` held); an extra one exits once idle a while.

        It counts as waiting from now on, so a burst of deliveries starts one thread each.
        """
        self._waiting += 1
        thread = threading.Thread(
            target=self._work, args=(extra,), name=f"nbcog-webhook-{self._seq}", daemon=True
        )
        self._seq += 1
        self._workers.append(thread)
        thread.start()

    def _next(self, *, extra: bool) -> _Delivery | None:
        """The next delivery (this worker already counts as waiting); None: exit."""
        while True:
            try:
                delivery = self._queue.get(timeout=_EXTRA_IDLE if extra else None)
            except queue.Empty:
                with self._state:
                    if self._queued == 0:  # nothing for it: an idle extra thread goes
                        self._waiting -= 1
                        self._workers.remove(threading.current_thread())
                        return None
                continue
            with self._state:
                self._waiting -= 1
                if delivery is not None:
                    self._queued -= 1
            return delivery

    def _work(self, extra: bool) -> None:
        with requests.Session() as session:  # one per thread: reused, never shared
            while (delivery := self._next(extra=extra)) is not None:
                retry_in = None
                try:
                    if self._closing.is_set():
                        logger.warning("webhook to %s dropped at close", delivery.url)
                    elif delivery.terminal:
                        retry_in = self._attempt_terminal(session, delivery)
                    else:
                        self._deliver_once(session, delivery)
                except Exception:  # a bug here must not kill the thread or leak _pending
                    logger.warning("webhook to %s failed unexpectedly", delivery.url, exc_info=True)
                with self._state:
                    self._waiting += 1  # back to waiting (counted before it is, on purpose)
                    if retry_in is None or self._closing.is_set():
                        self._done()
                    else:
                        self._seq += 1
                        heapq.heappush(
                            self._retries, (time.monotonic() + retry_in, self._seq, delivery)
                        )
                        self._state.notify_all()

    def _schedule(self) -> None:
        """Move each retry onto the delivery queue when it is due."""
        with self._state:
            while not self._closing.is_set():
                if not self._retries:
                    self._state.wait()
                    continue
                due = self._retries[0][0] - time.monotonic()
                if due > 0:
                    self._state.wait(due)
                    continue
                self._enqueue(heapq.heappop(self._retries)[2])

    @staticmethod
    def _post(session: requests.Session, delivery: _Delivery) -> requests.Response:
        return session.post(
            delivery.url, data=delivery.body, headers=delivery.headers, timeout=REQUEST_TIMEOUT
        )

    def _deliver_once(self, session: requests.Session, delivery: _Delivery) -> None:
        try:
            self._post(session, delivery)
        except requests.RequestException as exc:
            logger.warning("webhook to %s failed (not retried): %s", delivery.url, exc)

    def _attempt_terminal(self, session: requests.Session, delivery: _Delivery) -> float | None:
        """One attempt at a ``completed`` webhook; seconds until its retry, or None if done."""
        url = delivery.url
        try:
            status = self._post(session, delivery).status_code
        except requests.RequestException as exc:
            problem = f"request error: {exc}"
        else:
            if 200 <= status < 300:
                return None
            if status not in RETRY_STATUSES:
                logger.warning(
                    "completed webhook to %s failed with status %d (not retried)", url, status
                )
                return None
            problem = f"status {status}"
        delivery.retries += 1
        if delivery.retries > MAX_RETRIES:
            logger.warning(
                "completed webhook to %s failed after %d retries: %s", url, MAX_RETRIES, problem
            )
            return None
        delay = self._backoff(delivery.retries)
        logger.warning(
            "completed webhook to %s failed (%s); retry %d in %.1f s",
            url,
            problem,
            delivery.retries,
            delay,
        )
        return delay


@dataclass(slots=True)
class _Delivery:
    """One POST to make: the encoded snapshot and every header; retries made so far."""

    url: str
    body: bytes
    headers: dict[str, str]
    terminal: bool
    retries: int = 0
