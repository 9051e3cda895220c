"""The shell's ``ServerRegistry`` in a real ipykernel: made by ``%load_ext``, emptied by unload,
fresh after ``%reload_ext``; ``nbcog.serve`` without the magic uses (and makes) the same one."""

from __future__ import annotations

import pytest
from kernelkit import ECHO, Kernel, kernel, kernel_pythons, refused, serve, wait_ready

pytestmark = pytest.mark.slow
__all__ = ["kernel"]  # the fixture, imported for pytest

REGISTRY = "__import__('nbcog.kernel.registry').kernel.registry.registry_of(get_ipython())"


def test_unload_stops_the_servers_and_reload_gives_a_fresh_registry(kernel):
    """load -> serve two -> unload stops both and empties the registry; a reload starts anew."""
    kernel.ok(ECHO + "\nOther = Predictor")
    kernel.ok(f"registry = {REGISTRY}")
    magics = "get_ipython().magics_manager.registry['CogMagics']"
    assert kernel.value(f"{magics}.registry is registry") is True
    on_loop = serve(kernel)
    on_thread = serve(kernel, "Other --port 0 --thread")
    wait_ready(on_loop)
    wait_ready(on_thread)
    assert kernel.value("[h.url for h in registry.servers()]") == [on_loop, on_thread]
    kernel.ok("handles = registry.servers()\n%unload_ext nbcog")
    assert refused(on_loop)
    assert refused(on_thread)
    assert kernel.value("registry.servers()") == []
    assert kernel.value("[h.running for h in handles]") == [False, False]
    kernel.ok("%load_ext nbcog")
    assert kernel.value(f"{REGISTRY} is registry") is False
    assert kernel.value(f"{magics}.registry is {REGISTRY}") is True
    again = serve(kernel)
    kernel.ok(f"before = {REGISTRY}\n%reload_ext nbcog")
    assert refused(again)
    assert kernel.value(f"{REGISTRY} is before") is False
    assert kernel.value(f"{REGISTRY}.servers()") == []


@pytest.mark.parametrize("python", kernel_pythons())
def test_serve_without_the_magic_uses_the_shells_registry(python, tmp_path):
    """nbcog.serve before %load_ext makes the registry; %cog adopts it; shutdown stops it."""
    k = Kernel(python, tmp_path)
    try:
        k.ok(ECHO)
        k.ok("import nbcog\nhandle = nbcog.serve(Predictor, port=0)")
        url = k.value("handle.url")
        wait_ready(url)
        assert k.value(f"{REGISTRY}.servers() == [handle]") is True
        k.ok("%load_ext nbcog")
        assert k.ok("%cog status").stdout.startswith(f"Predictor at {url}")
    finally:
        k.shutdown()
    assert refused(url)
