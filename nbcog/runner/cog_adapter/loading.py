"""Turning what the user gave (a class, instance, function or reference) into a predictor."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import types
from typing import TypeGuard

import cog

_FRAMEWORK_CLASSES = (cog.BaseRunner, cog.BasePredictor, object)


def load_target(ref_or_obj: object) -> object:
    """Turn what the user gave into a predictor instance or a handler function.

    Accepts a class (validated, then instantiated), an instance, a function, or a reference
    ``path/to/file.py:Name`` / ``package.module:Name``; without ``:Name`` the module's
    ``Runner``, else its ``Predictor``, is used (as ``cog.predictor.load_predictor_from_ref``).
    A class that defines ``train()`` and neither ``run()`` nor ``predict()`` is accepted as a
    training-only class.

    Raises:
        ValueError: ``<Name> must define either run() or predict(), not both`` or
            ``run or predict method not found: <Name>``.
    """
    target = _resolve_ref(ref_or_obj) if isinstance(ref_or_obj, str) else ref_or_obj
    if inspect.isclass(target):
        _check_class(target)
        return target()
    if not is_function(target):
        _check_class(type(target))
    return target


def is_function(target: object) -> TypeGuard[types.FunctionType | types.MethodType]:
    """A plain or bound function: a handler by itself, not a predictor instance."""
    return inspect.isfunction(target) or inspect.ismethod(target)


def predict_method(cls: type) -> str | None:
    """``run`` or (deprecated) ``predict``, whichever the class defines; never both."""
    defines_run = defines_method(cls, "run")
    defines_predict = defines_method(cls, "predict")
    if defines_run and defines_predict:
        msg = f"{cls.__name__} must define either run() or predict(), not both"
        raise ValueError(msg)
    return "run" if defines_run else "predict" if defines_predict else None


def defines_method(cls: type, name: str) -> bool:
    """A class in ``cls``'s MRO below cog's base classes defines ``name``."""
    for owner in inspect.getmro(cls):
        if owner in _FRAMEWORK_CLASSES:
            break
        if callable(owner.__dict__.get(name)):
            return True
    return False


def method_not_found(methods: str, cls: type) -> ValueError:
    """cog's error for a class lacking ``methods`` (``run or predict``, ``train``)."""
    return ValueError(f"{methods} method not found: {cls.__name__}")


def _resolve_ref(ref: str) -> object:
    path, _, name = ref.partition(":")
    module = _load_file(path) if path.endswith(".py") else importlib.import_module(path)
    if name:
        return getattr(module, name)
    runner = getattr(module, "Runner", None)
    runner_error = _class_error(runner) if inspect.isclass(runner) else None
    if callable(runner) and runner_error is None:
        return runner
    if hasattr(module, "Predictor"):
        return module.Predictor
    if runner_error is not None:
        raise runner_error
    if runner is not None:
        msg = "Runner exists but is not a class or callable"
        raise TypeError(msg)
    msg = f"module {module.__name__!r} has no Runner or Predictor"
    raise AttributeError(msg)


def _load_file(path: str) -> types.ModuleType:
    """Execute a predictor file as cog does: named after the file, registered in sys.modules."""
    module_name = os.path.basename(path).removesuffix(".py")
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        msg = f"Cannot load module from {path}"
        raise ImportError(msg)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickle look the module up by name
    spec.loader.exec_module(module)
    return module


def _class_error(cls: type) -> ValueError | None:
    try:
        _check_class(cls)
    except ValueError as error:
        return error
    return None


def _check_class(cls: type) -> None:
    if predict_method(cls) is None and not defines_method(cls, "train"):
        raise method_not_found("run or predict", cls)
