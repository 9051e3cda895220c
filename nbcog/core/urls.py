"""Where a served predictor can be reached: the local URL, and the JupyterHub/Binder proxy URL.

Pure functions of their arguments (the environment is passed in), so the rules are unit-tested
without a hub. Behind JupyterHub or Binder the browser cannot reach ``127.0.0.1:PORT`` of the
user's container; jupyter-server-proxy forwards ``{JUPYTERHUB_SERVICE_PREFIX}proxy/{PORT}/`` to
it instead (the pattern Bokeh's ``_remote_jupyter_proxy_url`` uses).

The proxy buffers whole responses and streams only when the request's ``Accept`` header is
*exactly* ``text/event-stream`` (a plain string comparison in jupyter-server-proxy): an SSE
client that sends ``text/event-stream, */*`` gets nothing until the prediction has ended.
``PROXY_SSE_NOTE`` says so wherever a proxy URL is shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

PROXY_SSE_NOTE = (
    "through the proxy, SSE streams only when the request's Accept header is exactly "
    "'text/event-stream' (no other types listed); otherwise the proxy buffers the whole response"
)

# Where the public address of the user's server may be found, most specific first:
# JupyterHub >= 5 sets JUPYTERHUB_PUBLIC_URL when the hub knows its public URL, and
# JUPYTERHUB_HOST when users get their own subdomain.
_ORIGIN_VARIABLES = ("JUPYTERHUB_PUBLIC_URL", "JUPYTERHUB_HOST")


def local_url(host: str, port: int) -> str:
    """``http://host:port`` for a bound address; the wildcard hosts become ``127.0.0.1``.

    A server bound to ``0.0.0.0`` (or ``::``) is reachable from this machine at the loopback
    address, which is what a curl line printed in the notebook should use.
    """
    if host in ("", "0.0.0.0"):  # noqa: S104 - naming the wildcard, not binding it
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def proxy_url(port: int, environ: Mapping[str, str]) -> str | None:
    """The jupyter-server-proxy URL of ``port``, or None outside JupyterHub/Binder.

    ``environ`` is ``os.environ`` in production. The result is absolute when the hub's public
    origin is known (``JUPYTERHUB_PUBLIC_URL``, else ``JUPYTERHUB_HOST``), otherwise a path
    on the notebook server's own origin, e.g. ``/user/ada/proxy/5000/``.
    """
    prefix = environ.get("JUPYTERHUB_SERVICE_PREFIX", "").strip()
    if not prefix:
        return None
    base = prefix.strip("/")
    path = f"/{base}/proxy/{port}/" if base else f"/proxy/{port}/"
    for name in _ORIGIN_VARIABLES:
        origin = _origin(environ.get(name, ""))
        if origin:
            return origin + path
    return path


def _origin(url: str) -> str | None:
    parts = urlsplit(url.strip())
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return None
