"""Refusals on a real server leave the client's kept-alive connection usable (I14)."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable

import pytest

from tests.support.server import Server

pytestmark = pytest.mark.e2e


def test_413_422_401_and_405_keep_the_connection(servers: Callable[..., Server]) -> None:
    server = servers(GENKEEP_MAX_BODY_BYTES="100000")
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    headers = {"Content-Type": "application/json"}
    refusals = [
        # A body far over the cap, refused before it is read: the rest is drained, not kept.
        ("POST", "/v1/jobs", b'{"title": "' + b"x" * 2_000_000 + b'"}', 413),
        ("POST", "/v1/jobs", json.dumps({"title": "a\x00b"}).encode(), 422),
        ("POST", "/v1/jobs", b'{"title": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400),
        ("DELETE", "/v1/generate", b"", 405),
    ]
    connection.request("GET", "/healthz")
    connection.getresponse().read()
    socket = connection.sock
    for method, path, body, status in refusals:
        connection.request(method, path, body, headers)
        response = connection.getresponse()
        response.read()
        assert response.status == status, (path, status)
        assert response.getheader("content-type") == "application/problem+json"
        connection.request("POST", "/v1/jobs", json.dumps({"title": "after"}), headers)
        after = connection.getresponse()
        after.read()
        assert after.status == 201
        assert connection.sock is socket, f"the connection was dropped after {status}"


def test_an_idle_connection_outlives_a_client_pools_expiry(servers: Callable[..., Server]) -> None:
    """httpx drops a pooled connection after 5 s idle; a server that closed it at 5 s too
    would race the client's next request on it, which then gets no response at all."""
    server = servers()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("GET", "/healthz")
    connection.getresponse().read()
    socket = connection.sock
    time.sleep(6)  # idle past uvicorn's default keep-alive (5 s), not a timing assertion
    connection.request("GET", "/healthz")
    response = connection.getresponse()
    response.read()
    assert response.status == 200
    assert connection.sock is socket
