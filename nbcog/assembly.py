"""The composition root: runtime + webhooks + service for one served predictor.

Every front end that serves a predictor gets its ``PredictionService`` built here: the CLI
(``python -m nbcog serve``), the kernel (``%cog serve``, through ``kernel/handle.py``),
``nbcog.testing`` and ``nbcog.Server``. The HTTP layer receives the factory and never imports
the runner; the service receives its runtime and webhook sender and never builds them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from nbcog._version import __version__
from nbcog.http.app import DEFAULT_KEEPALIVE, DEFAULT_MAX_BODY_SIZE
from nbcog.http.reloading import ReloadableServer
from nbcog.http.server import DEFAULT_PORT
from nbcog.runner.runtime import Runtime
from nbcog.runner.webhooks import WebhookSender
from nbcog.service import PredictionService

USER_AGENT = f"nbcog/{__version__}"
"""The ``User-Agent`` of webhook calls."""


class PredictorServices:
    """Builds a service for ``predictor``: a new ``Runtime`` each time, one webhook sender.

    The sender (its delivery threads) is made at the first ``build`` and shared by every
    service built until ``release``: after a hot reload the old service, still finishing its
    predictions, sends its webhooks through the same one. ``predictor`` may be replaced between
    builds (``kernel/handle.py`` does, to reload).

    Args:
        predictor: a class, instance, function, or ``file.py:Name``.
        train: an optional separate training handler (``--train``).
        upload_url: PUT file outputs here instead of returning data URLs.
        history_capacity: SSE replay history per prediction (default from
            ``COG_STREAM_HISTORY_CAPACITY``, else 1024).
        recent_bytes: memory budget of the finished predictions kept for status displays
            (default from ``NBCOG_RECENT_BYTES``, else 64 MiB; oldest evicted first).
    """

    def __init__(
        self,
        predictor: object,
        *,
        train: object | None = None,
        upload_url: str | None = None,
        history_capacity: int | None = None,
        recent_bytes: int | None = None,
    ) -> None:
        self.predictor = predictor
        self.train = train
        self.upload_url = upload_url
        self.history_capacity = history_capacity
        self.recent_bytes = recent_bytes
        self._webhooks: WebhookSender | None = None

    def build(self, loop: asyncio.AbstractEventLoop) -> PredictionService:
        """A new service for the current ``predictor`` on ``loop``, not started."""
        if self._webhooks is None:
            self._webhooks = WebhookSender(user_agent=USER_AGENT)
        return PredictionService(
            Runtime(self.predictor, train=self.train),
            loop=loop,
            webhooks=self._webhooks,
            upload_url=self.upload_url,
            history_capacity=self.history_capacity,
            recent_bytes=self.recent_bytes,
        )

    def release(self) -> Callable[[], None]:
        """Detach the webhook sender; the returned call closes it (queued ones get 5 s).

        Detached at once, so a ``build`` right after (a restart) gets a sender of its own.
        """
        webhooks, self._webhooks = self._webhooks, None
        return webhooks.close if webhooks is not None else _nothing_to_close


def _nothing_to_close() -> None:
    pass


class Server(ReloadableServer):
    """``nbcog.Server(predictor, ...)``: serve ``predictor`` over Cog's HTTP API.

    ``predictor``, ``train``, ``upload_url``, ``history_capacity`` and ``recent_bytes`` are
    ``PredictorServices``'s; ``host``, ``port``, ``max_body_size``, ``keepalive`` and ``token``
    are ``nbcog.http.server.Server``'s (``start()``, ``stop()``, ``run()`` and the rest are too).
    ``reload(predictor)`` serves new code on the same socket (``nbcog.http.reloading``).
    """

    services: PredictorServices

    def __init__(
        self,
        predictor: object,
        *,
        train: object | None = None,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        upload_url: str | None = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        keepalive: float = DEFAULT_KEEPALIVE,
        history_capacity: int | None = None,
        recent_bytes: int | None = None,
        token: str | None = None,
    ) -> None:
        services = PredictorServices(
            predictor,
            train=train,
            upload_url=upload_url,
            history_capacity=history_capacity,
            recent_bytes=recent_bytes,
        )
        super().__init__(
            services,
            host=host,
            port=port,
            max_body_size=max_body_size,
            keepalive=keepalive,
            token=token,
        )

    def reload(self, predictor: object | None = None) -> list[str]:
        """Serve ``predictor`` (None: the same reference again) on the same socket.

        Serving loop only. Predictions in flight are cancelled; returns their ids.

        Raises:
            RuntimeError: the server is not running.
        """
        if not self.running:
            msg = "the server is not running"
            raise RuntimeError(msg)
        if predictor is not None:
            self.services.predictor = predictor
        return super().reload()
