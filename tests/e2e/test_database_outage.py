"""A database that goes away answers 503 with Retry-After, and no answer drops the connection.

PostgreSQL is reached through a loopback proxy the test stops (every connection cut,
new ones refused) and starts again, under a real ``genkeep serve``.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import _admin, admin_url, process_env
from tests.support.postgres import dsn
from tests.support.proxy import Proxy
from tests.support.server import Server

pytestmark = pytest.mark.e2e


@pytest.fixture
def pg_url(templates: dict[str, str]) -> Iterator[str]:
    name = f"genkeep_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}" TEMPLATE "{templates["postgresql"]}"'))
    try:
        yield dsn(admin_url(), name)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def proxied(pg_url: str, tmp_path: Path) -> Iterator[tuple[Server, Proxy]]:
    url = make_url(pg_url)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432)).start()
    env = process_env(url.set(port=proxy.port).render_as_string(hide_password=False), tmp_path)
    server = Server({**env, "GENKEEP_RETRY_AFTER_S": "7"}, tmp_path / "server.log")
    server.env["GENKEEP_BLOB_DIR"] = str(tmp_path / "blobs")
    try:
        yield server.start(), proxy
    finally:
        server.stop()
        proxy.stop()
        print(server.log()[-4000:])


def _post(
    connection: http.client.HTTPConnection, path: str, body: object, **headers: str
) -> tuple[int, dict[str, str], dict[str, object]]:
    headers["Content-Type"] = "application/json"
    connection.request("POST", path, json.dumps(body), headers)
    response = connection.getresponse()
    data = json.loads(response.read())
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def test_a_database_outage_answers_503_and_keeps_the_connection(
    proxied: tuple[Server, Proxy],
) -> None:
    server, proxy = proxied
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    status, _, job = _post(connection, "/v1/jobs", {"title": "Outage"})
    assert status == 201
    socket_before = connection.sock
    assert socket_before is not None

    proxy.stop()
    for attempt in range(4):
        status, headers, problem = _post(connection, "/v1/generate", {"prompt": f"p{attempt}"})
        assert status == 503, problem
        assert headers["content-type"] == "application/problem+json"
        assert headers["retry-after"] == "7"
        assert problem["code"] == "database-unavailable"
        assert headers.get("connection", "").lower() != "close"
        # The same socket answered every time: nothing was dropped and reopened.
        assert connection.sock is socket_before
    status, headers, problem = _post(
        connection,
        f"/v1/jobs/{job['id']}/tasks",
        {"kind": "noop", "payload": {}},
        **{"Idempotency-Key": "outage"},
    )
    assert (status, problem["code"]) == (503, "database-unavailable")
    # The OpenAI-compatible route answers in OpenAI's shape, so an SDK shows the message.
    chat = {"model": "default", "messages": [{"role": "user", "content": "outage"}]}
    status, headers, error = _post(connection, "/v1/chat/completions", chat)
    assert status == 503 and headers["retry-after"] == "7", error
    assert error["error"] == {
        "message": "The database is unavailable; retry shortly",
        "type": "server_error",
        "param": None,
        "code": "database_unavailable",
    }, error
    assert connection.sock is socket_before
    connection.request("GET", "/v1/jobs")
    listed = connection.getresponse()
    listed.read()
    assert listed.status == 503 and connection.sock is socket_before

    proxy.start()
    deadline = time.monotonic() + 30
    while True:
        status, _, answer = _post(connection, "/v1/generate", {"prompt": "back"})
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200, answer
    assert connection.sock is socket_before
    assert "unhandled error" not in server.log()


def test_requests_in_flight_when_the_database_stops_answer_200_or_503(
    proxied: tuple[Server, Proxy],
) -> None:
    server, proxy = proxied

    def client(index: int) -> list[int]:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        statuses = []
        for n in range(15):
            status, _, _ = _post(connection, "/v1/generate", {"prompt": f"load {index} {n}"})
            statuses.append(status)
            time.sleep(0.02)
        return statuses

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(client, i) for i in range(4)]
        time.sleep(0.3)
        proxy.stop()
        time.sleep(1.0)
        proxy.start()
        statuses = [s for f in futures for s in f.result()]
    assert set(statuses) <= {200, 503}, statuses
    assert 503 in statuses
    assert "unhandled error" not in server.log()
