"""Describing a loaded predictor: its lifecycle hooks and its predict and train handlers."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nbcog.runner.cog_adapter.handler import HandlerInfo, Kind, describe_handler
from nbcog.runner.cog_adapter.loading import (
    defines_method,
    is_function,
    method_not_found,
    predict_method,
)


@dataclass(frozen=True)
class PredictorInfo:
    """A loaded predictor: its lifecycle hooks and its handlers.

    ``setup`` receives ``weights=`` (``COG_WEIGHTS`` or ``None``) when
    ``setup_takes_weights``; ``healthcheck`` is ``None`` when the predictor has none.
    """

    name: str
    setup: Callable[..., Any] | None
    setup_takes_weights: bool
    setup_is_async: bool
    healthcheck: Callable[[], Any] | None
    predict: HandlerInfo | None
    train: HandlerInfo | None


def describe_predictor(target: object, *, kind: Kind = "predict") -> PredictorInfo:
    """Describe what ``load_target`` returned.

    A function becomes the ``kind`` handler. An instance has its ``run()``/``predict()`` as
    predict and its ``train()``, if defined, as train; ``kind`` names the one it must have.
    """
    if is_function(target):
        handler = describe_handler(target, is_method=inspect.ismethod(target), kind=kind)
        return PredictorInfo(
            name=target.__name__,
            setup=None,
            setup_takes_weights=False,
            setup_is_async=False,
            healthcheck=None,
            predict=handler if kind == "predict" else None,
            train=handler if kind == "train" else None,
        )
    cls = type(target)
    method = predict_method(cls)
    has_train = defines_method(cls, "train")
    if method is None and kind == "predict":
        raise method_not_found("run or predict", cls)
    if not has_train and kind == "train":
        raise method_not_found("train", cls)
    predict = getattr(target, method) if method else None
    train = getattr(target, "train", None) if has_train else None
    setup = getattr(target, "setup", None)
    healthcheck = getattr(target, "healthcheck", None)
    return PredictorInfo(
        name=cls.__name__,
        setup=setup if callable(setup) else None,
        setup_takes_weights=callable(setup) and "weights" in inspect.signature(setup).parameters,
        setup_is_async=inspect.iscoroutinefunction(setup),
        healthcheck=healthcheck if callable(healthcheck) else None,
        predict=describe_handler(predict, is_method=True, kind="predict") if predict else None,
        train=describe_handler(train, is_method=True, kind="train") if train else None,
    )
