"""The tornado ``Application`` for one served predictor (spec §2 routes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tornado.web

from nbcog.http import handlers
from nbcog.http.health import HealthChecker
from nbcog.http.responses import OpenResponses
from nbcog.service import PredictionService

MiB = 1024 * 1024
DEFAULT_MAX_BODY_SIZE = 100 * MiB
DEFAULT_KEEPALIVE = 15.0

_ID = r"([^/]+)"


def make_app(
    service: PredictionService,
    *,
    on_shutdown: Callable[[], None],
    responses: OpenResponses,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    keepalive: float = DEFAULT_KEEPALIVE,
) -> tornado.web.Application:
    """Build the application; ``on_shutdown`` runs after ``POST /shutdown`` has replied.

    ``responses`` counts the create requests being answered; it outlives the application
    (a hot reload makes a new one) because the server waits on it when it stops.
    """
    common: dict[str, Any] = {"service": service}
    create: dict[str, Any] = {
        **common,
        "max_body_size": max_body_size,
        "keepalive": keepalive,
        "responses": responses,
    }
    routes: list[Any] = [
        (r"/", handlers.RootHandler, common),
        (
            r"/health-check",
            handlers.HealthHandler,
            {**common, "health_checker": HealthChecker(service.user_healthcheck)},
        ),
        (r"/openapi.json", handlers.OpenAPIHandler, common),
        (r"/shutdown", handlers.ShutdownHandler, {**common, "on_shutdown": on_shutdown}),
    ]
    for prefix, training in (("predictions", False), ("trainings", True)):
        routes += [
            (rf"/{prefix}", handlers.PostHandler, {**create, "training": training}),
            (rf"/{prefix}/{_ID}", handlers.PutHandler, {**create, "training": training}),
            (rf"/{prefix}/{_ID}/cancel", handlers.CancelHandler, common),
        ]
    return tornado.web.Application(
        routes,
        default_handler_class=handlers.NotFoundHandler,
        default_handler_args=common,
        compress_response=False,
    )
