"""``ReloadableServer``: a ``Server`` that swaps its service without closing its socket.

Used by notebooks (serving a cell again) and by ``--reload`` (saving the file), through
``nbcog.Server.reload(predictor)`` (``nbcog/assembly.py``), which gives the service factory the
new predictor first.

Hot reload keeps the listening socket, so the port and URL never change and no client sees a
refused connection: a new service and application replace the old ones
(``Server.replace_service``), and every *new* request reaches them. Requests already being
handled finish against the old service.

**Predictions in flight at a reload are cancelled.** They end ``canceled`` the normal way: SSE
clients get the ``completed`` event, sync clients the canceled body, webhooks fire. Letting them
finish on the old code was the alternative; cancelling was chosen because the old model is then
released as soon as possible instead of sharing memory (often a GPU) with the new one while its
``setup()`` runs, and because a result computed by code the user has just replaced is rarely
wanted. The old service is closed once its last prediction has ended (a sync predictor stuck in
a C call keeps it until the call returns). Cancel and ``PUT`` requests for old prediction ids
reach the new service and get 404.
"""

from __future__ import annotations

from typing import Any

from nbcog.http.server import Server, ServiceFactory
from nbcog.service import PredictionService


class ReloadableServer(Server):
    """A ``Server`` whose service can be rebuilt without closing its socket."""

    def __init__(self, services: ServiceFactory, **options: Any) -> None:
        super().__init__(services, **options)
        self._draining: list[PredictionService] = []

    def reload(self) -> list[str]:
        """Serve a new service from ``services`` (serving loop only); returns the cancelled ids.

        Its ``setup()`` starts at once on a setup thread; until it ends the health-check says
        ``STARTING`` and creates get 503, as at first start.

        Raises:
            RuntimeError: the server is not running.
        """
        old = self.replace_service()
        assert self.service is not None
        cancelled = [entry.prediction.id for entry in old.inflight()]
        for prediction_id in cancelled:
            old.cancel(prediction_id)
        self._retire(old)
        self.service.start()
        return cancelled

    def _retire(self, old: PredictionService) -> None:
        pending = old.inflight()
        if not pending:
            old.close()
            return
        self._draining.append(old)
        remaining = [len(pending)]

        def ended(_: object) -> None:
            remaining[0] -= 1
            if remaining[0] == 0 and old in self._draining:
                self._draining.remove(old)
                old.close()

        for entry in pending:
            entry.on_done(ended)

    def stop(self) -> None:
        """Close services still draining after a reload, then stop as ``Server.stop`` does.

        In that order, so their predictions' ``completed`` webhooks are queued before the
        webhook sender closes.
        """
        draining, self._draining = self._draining, []
        for service in draining:
            service.close()
        super().stop()
