"""The prediction service: the one front door that HTTP handlers, the CLI and widgets share.

It owns setup state, slots, the predictions and the rules of spec §6-§8, §11.4, §14 and §16,
and nothing about HTTP. One job per module: ``settings`` (the environment), ``request`` (what
a front end hands in), ``setup`` (setup and health), ``policy`` (the spec §6 checks),
``registry`` (ids, in flight, listeners, the recent ones), ``inflight`` (one prediction, and
the read-only ``PredictionRef`` front ends get), ``state`` (``PredictionState``,
the read-only type of what they read), ``delivery`` (events from the runner) and
``facade`` (``PredictionService``, composing them).

Import rule: nbcog.core and nbcog.runner only.
"""

from nbcog.service.facade import PredictionService
from nbcog.service.inflight import PredictionRef, PredictionStream
from nbcog.service.policy import SECRET_MASK
from nbcog.service.request import CreateRequest, Loop, Mode
from nbcog.service.settings import (
    DEFAULT_RECENT_BYTES,
    RECENT_BYTES_ENV,
    RECENT_LIMIT,
    history_capacity_from_env,
    recent_bytes_from_env,
    setup_timeout_from_env,
)
from nbcog.service.setup import Health
from nbcog.service.state import PredictionState

__all__ = [
    "DEFAULT_RECENT_BYTES",
    "RECENT_BYTES_ENV",
    "RECENT_LIMIT",
    "SECRET_MASK",
    "CreateRequest",
    "Health",
    "Loop",
    "Mode",
    "PredictionRef",
    "PredictionService",
    "PredictionState",
    "PredictionStream",
    "history_capacity_from_env",
    "recent_bytes_from_env",
    "setup_timeout_from_env",
]
