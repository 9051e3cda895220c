import time, sys
sys.path.insert(0, "/work/main/tests")
from test_sse import *  # noqa

def test_dbg(serve_source, connect, tmp_path):
    gate = tmp_path / "gate"
    with serve_source(GATED, history_capacity=2) as s:
        creator = connect(s, "POST", "/predictions", {"id": "tr", "input": {"n": 12, "hold_at": 9, "gate": str(gate)}})
        creator.read_until(is_output(8))
        t = time.monotonic()
        late = connect(s, "PUT", "/predictions/tr", {})
        print("head", time.monotonic() - t)
        late._recv(); print("recv1", time.monotonic() - t, bytes(late._raw[late._pos:]))
        late._recv(); print("recv2", time.monotonic() - t, bytes(late._raw[late._pos:]), late.eof)
        late._recv(); print("recv3", time.monotonic() - t, late.eof)
        gate.touch()
