"""How a failed prediction's error reads to a person: the one place every front end asks.

The HTTP ``error`` keeps coglet's exact string, wrapped once per layer that caught it
(``Prediction failed: Prediction failed: ValueError: n=3 is not supported``). The notebook
(``%cog status``, the raised ``PredictionFailed``, the view in Python and in the browser, its
static HTML and text forms, the monitor's rows) shows what the predictor raised, once:
``ValueError: n=3 is not supported``. Pure: the kernel and the widget layers both import it.
"""

from __future__ import annotations

_WRAPPERS = (
    "Prediction failed: ",
    "Training failed: ",
    "Async prediction failed: ",
    "Async training failed: ",
    "Generator iteration error: ",
)


def failure_reason(error: str) -> str:
    """What went wrong, without coglet's wrapping of it.

    Errors nbcog words itself (``Failed to serialize output: ...``, an upload or download
    failure) keep their own words.
    """
    while True:
        for wrapper in _WRAPPERS:
            if error.startswith(wrapper):
                error = error[len(wrapper) :]
                break
        else:
            return error
