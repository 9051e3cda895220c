"""What `%cog predict` leaves in a cell, read from a real ipykernel's messages: each thing once.

With a kernel the cell shows one live ``PredictionView``; its final display (sent before the
cell ends) carries a ``text/plain`` form with the status, output and logs, for frontends without
widgets. Nothing else repeats them: no stdout echo of the logs, no ``Out[n]``. ``--plain`` prints
the logs as they come and shows the output once instead. Either way ``out = %cog predict ...``
gets the output value.
"""

from __future__ import annotations

import pytest
from kernelkit import ECHO, kernel, serve

pytestmark = pytest.mark.slow
__all__ = ["kernel"]  # the fixture, imported for pytest

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

STREAM = """
from cog import BaseRunner, ConcatenateIterator, streaming

class Predictor(BaseRunner):
    @streaming
    def run(self, n: int = 3) -> ConcatenateIterator[str]:
        print("loading the model")
        for i in range(n):
            yield f"token{i} "
        print("generation finished")
"""


def _views(displays: list[dict]) -> list[dict]:
    return [d for d in displays if WIDGET_VIEW in d]


@pytest.mark.parametrize("mode", ["", " --thread"])
def test_predict_shows_one_view_and_nothing_else(kernel, mode):
    """One view; its final text/plain has status, output and logs once; no stdout, no Out[n]."""
    kernel.ok(STREAM)
    serve(kernel, f"Predictor --port 0{mode}")
    cell = kernel.ok("%cog predict -i n=3")
    assert cell.stdout == ""
    assert cell.stderr == ""
    assert cell.results == []
    assert len(cell.displays) == 1
    assert len(_views(cell.displays)) == 1
    prediction = cell.displays[0]["text/plain"].split(":")[0]
    assert prediction.startswith("prediction pred_")
    # A console that ignores display updates keeps the first text: it says what to do there.
    assert "use `%cog predict --plain` there" in cell.displays[0]["text/plain"]
    # The final view replaces the display before the cell ends (nbclient keeps this one).
    assert cell.updates, "the final view must be sent while the cell runs"
    final = cell.updates[-1]
    assert WIDGET_VIEW in final
    lines = final["text/plain"].splitlines()
    assert lines[0].startswith(f"{prediction}: succeeded in ")
    assert "--plain" not in final["text/plain"]
    assert lines[1:] == [
        "token0 token1 token2 ",
        "logs:",
        "  loading the model",
        "  generation finished",
    ]
    assert "token2" in final["text/html"]
    assert final["text/html"].count("loading the model") == 1


def test_assigned_predict_returns_the_output_and_print_still_prints(kernel):
    """`out = %cog predict` holds the output value; print in an ordinary cell still prints."""
    kernel.ok(ECHO)
    serve(kernel)
    cell = kernel.ok("out = %cog predict -i text=ab -i times=2")
    assert cell.stdout == ""
    assert cell.results == []
    assert kernel.value("out") == "abab"
    cell = kernel.ok("x = %cog predict -i text=c\nx + '!'")
    assert cell.results == [{"text/plain": "'c!'"}]  # other values of the cell still show
    assert kernel.ok("print('an ordinary print')").stdout == "an ordinary print\n"


def test_plain_prints_logs_then_shows_the_output_once(kernel):
    """--plain: no widget; the logs on stdout, the output once as text; the value returned."""
    kernel.ok(STREAM)
    serve(kernel)
    cell = kernel.ok("%cog predict --plain -i n=2")
    assert cell.stdout == "loading the model\ngeneration finished\n"
    assert cell.displays == [{"text/plain": "token0 token1 "}]
    assert cell.updates == []
    cell = kernel.ok("out = %cog predict --plain -i n=1")
    assert cell.displays == [{"text/plain": "token0 "}]
    assert kernel.value("out") == ["token0 "]


def test_predict_help_lists_plain(kernel):
    """`%cog predict --help` documents --plain."""
    assert "--plain" in kernel.ok("%cog predict --help").stdout


def test_monitor_says_when_its_server_reloads_or_stops(kernel):
    """Serving again greys the old code's rows and follows the new code; %cog stop freezes it."""
    kernel.ok(ECHO)
    url = serve(kernel)
    kernel.ok("import nbcog\nmonitor = nbcog.kernel.serving.servers()[-1].watch()")
    kernel.ok("%cog predict -i text=old")
    assert kernel.value("monitor.list.notice") == ""
    kernel.ok(ECHO.replace("return text * times", "return text.upper()"))
    port = url.rsplit(":", 1)[1]
    assert "reloaded" in kernel.ok(f"%cog serve Predictor --port {port}").stdout
    kernel.ok("%cog predict -i text=new")
    notice = kernel.value("monitor.list.notice")
    assert notice.startswith("Reloaded at ") and notice.endswith(
        "greyed rows ran the previous code."
    )
    rows = kernel.value("[(r['status'], r['previous']) for r in monitor.list.rows]")
    assert rows == [["succeeded", False], ["succeeded", True]]  # newest first: the new code's
    plain = kernel.value("monitor._repr_mimebundle_()[0]['text/plain']")
    assert plain == f"nbcog monitor: 2 predictions ({notice})"
    kernel.ok("%cog stop")
    assert kernel.value("monitor.list.stopped") is True
    notice = kernel.value("monitor.list.notice")
    assert notice.startswith("Server stopped at ")
    assert notice.endswith("it serves no more predictions.")
    assert "Server stopped at " in kernel.value("monitor._repr_mimebundle_()[0]['text/html']")


def test_handle_predict_with_a_view_shows_it_once(kernel):
    """handle.predict(show_view=True) ending a cell: its view only, no Out[n]; result returned."""
    kernel.ok(STREAM)
    serve(kernel)
    kernel.ok("import nbcog\nhandle = nbcog.kernel.serving.servers()[-1]")
    cell = kernel.ok("handle.predict(show_view=True, n=2)")
    assert cell.stdout == ""
    assert cell.results == []
    assert len(cell.displays) == 1 and len(_views(cell.displays)) == 1
    assert "token0 token1 " in cell.updates[-1]["text/plain"]
    kernel.ok("result = handle.predict(show_view=True, n=1)")
    assert kernel.value("result.output") == ["token0 "]
    assert kernel.ok("result").displays == [{"text/plain": "token0 "}]  # later, on request
