"""The URLs a served predictor is reached at: local, and behind JupyterHub/Binder's proxy."""

from __future__ import annotations

import pytest

from nbcog.core.urls import PROXY_SSE_NOTE, local_url, proxy_url


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("127.0.0.1", 5000, "http://127.0.0.1:5000"),
        ("localhost", 5001, "http://localhost:5001"),
        ("0.0.0.0", 5002, "http://127.0.0.1:5002"),
        ("", 5003, "http://127.0.0.1:5003"),
        ("::", 5004, "http://[::1]:5004"),
        ("::1", 5005, "http://[::1]:5005"),
        ("10.1.2.3", 5006, "http://10.1.2.3:5006"),
    ],
)
def test_local_url(host, port, url):
    """The curl-able URL: wildcard binds become loopback, IPv6 hosts are bracketed."""
    assert local_url(host, port) == url


@pytest.mark.parametrize(
    "environ", [{}, {"JUPYTERHUB_SERVICE_PREFIX": ""}, {"JUPYTERHUB_SERVICE_PREFIX": "  "}]
)
def test_no_proxy_url_outside_a_hub(environ):
    """Without JUPYTERHUB_SERVICE_PREFIX there is no proxy URL."""
    assert proxy_url(5000, environ) is None


@pytest.mark.parametrize(
    ("prefix", "path"),
    [
        ("/user/ada/", "/user/ada/proxy/5000/"),
        ("/user/ada", "/user/ada/proxy/5000/"),
        ("user/ada/", "/user/ada/proxy/5000/"),
        ("/hub-base/user/ada/work/", "/hub-base/user/ada/work/proxy/5000/"),
        ("/", "/proxy/5000/"),
    ],
)
def test_proxy_path_without_a_known_origin(prefix, path):
    """Without the hub's public origin the proxy URL is a path on the notebook's own origin."""
    assert proxy_url(5000, {"JUPYTERHUB_SERVICE_PREFIX": prefix}) == path


@pytest.mark.parametrize(
    ("variables", "url"),
    [
        (
            {"JUPYTERHUB_PUBLIC_URL": "https://hub.example.org/"},
            "https://hub.example.org/user/ada/proxy/8080/",
        ),
        (
            {"JUPYTERHUB_PUBLIC_URL": "https://hub.example.org/base/"},
            "https://hub.example.org/user/ada/proxy/8080/",
        ),
        (
            {"JUPYTERHUB_HOST": "https://ada.hub.example.org"},
            "https://ada.hub.example.org/user/ada/proxy/8080/",
        ),
        (
            {
                "JUPYTERHUB_PUBLIC_URL": "http://first.example",
                "JUPYTERHUB_HOST": "https://second.example",
            },
            "http://first.example/user/ada/proxy/8080/",
        ),
        (
            {"JUPYTERHUB_PUBLIC_URL": "hub.example.org", "JUPYTERHUB_HOST": ""},
            "/user/ada/proxy/8080/",
        ),
        ({"JUPYTERHUB_HOST": "ftp://files.example"}, "/user/ada/proxy/8080/"),
    ],
)
def test_proxy_url_with_the_hub_origin(variables, url):
    """JUPYTERHUB_PUBLIC_URL, else JUPYTERHUB_HOST, gives the origin; non-http(s) is ignored."""
    environ = {"JUPYTERHUB_SERVICE_PREFIX": "/user/ada/", **variables}
    assert proxy_url(8080, environ) == url


def test_proxy_note_names_the_exact_accept_header():
    """The note says SSE passes the proxy only with Accept exactly text/event-stream."""
    assert "exactly 'text/event-stream'" in PROXY_SSE_NOTE
    assert "buffers the whole response" in PROXY_SSE_NOTE
