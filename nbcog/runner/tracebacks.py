"""Tracebacks that start in the user's code.

A predictor's ``setup()`` or ``predict()`` is called from nbcog's runner, and a predictor
file is imported through importlib, so a raw traceback opens with frames a user cannot act
on. The leading ones are dropped here, as Python itself drops importlib's frames from an
import error: what is left starts at the first line the user wrote (or, for an error nbcog
raised itself, such as an unsupported input type, is only the exception line).
"""

from __future__ import annotations

import os
import traceback
from types import TracebackType

# The runner's own frames (it is what calls setup() and predict() and imports predictor
# files), and importlib's.
_HIDDEN = (os.path.dirname(os.path.abspath(__file__)) + os.sep, "<frozen importlib.")


def _hidden(tb: TracebackType) -> bool:
    return tb.tb_frame.f_code.co_filename.startswith(_HIDDEN)


def user_traceback_lines(exc: BaseException) -> list[str]:
    """``traceback.format_exception(exc)`` without the leading runner and importlib frames."""
    tb = exc.__traceback__
    while tb is not None and _hidden(tb):
        tb = tb.tb_next
    return traceback.format_exception(type(exc), exc, tb)
