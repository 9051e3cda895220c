"""Live notebook widgets over the in-process broadcaster (issue 5).

* ``PredictionView(entry, service, base_url=...)``: one prediction, live (output, logs,
  metrics, status, time, cancel, timeline, "copy as curl").
* ``ServerMonitor(service, base_url=...)``: every prediction of a service, newest first,
  including those created over HTTP; click one to open its view.
* ``InputForm(service, base_url=...)``: controls built from the OpenAPI ``Input`` schema; Run
  submits through ``service.create`` and shows the new prediction's view.

Layering: imports core, service, ipywidgets/anywidget/traitlets; never tornado, never IPython
directly, and never ``nbcog.http`` (http and widget are peers over the same service).
Build, read and close these widgets on the serving loop's thread (where notebook cells run).
"""

from __future__ import annotations

from nbcog.widget.form import InputForm
from nbcog.widget.monitor import ServerMonitor
from nbcog.widget.view import PredictionView

__all__ = ["InputForm", "PredictionView", "ServerMonitor"]
