"""The edge below the application, against a real server over real sockets (issue 20).

One ``genkeep serve`` per database, with small limits: an 8 KiB head, 1 s to send it,
1 s of body stall, 1 s for a statement. Each limit is watched from the client's socket.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from genkeep.config import Settings
from genkeep.services import close_services, open_services
from tests.conftest import BACKENDS, _admin, admin_url, process_env
from tests.support.postgres import dsn
from tests.support.server import Server

pytestmark = pytest.mark.e2e

MAX_HEADER = 8192
# What the server is given, and how late an answer may come on this loaded machine.
TIMEOUT_S = 1.0
LATE_S = 6.0


@dataclass
class Edge:
    server: Server
    db_url: str
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture(scope="module", params=BACKENDS)
def edge(
    request: pytest.FixtureRequest,
    templates: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Edge]:
    tmp = tmp_path_factory.mktemp(f"edge-{request.param}")
    name = ""
    if request.param == "sqlite":
        shutil.copyfile(templates["sqlite"], tmp / "genkeep.db")
        db_url = f"sqlite:///{tmp / 'genkeep.db'}"
    else:
        name = f"genkeep_edge_{uuid.uuid4().hex[:10]}"
        asyncio.run(_admin(f'CREATE DATABASE "{name}" TEMPLATE "{templates["postgresql"]}"'))
        db_url = dsn(admin_url(), name)

    async def make_key() -> str:
        settings = Settings(database_url=db_url, data_dir=tmp / "var", _env_file=None)
        services = await open_services(settings)
        try:
            return (await services.keys.create("alice", "edge"))[1]
        finally:
            await close_services(services)

    key = asyncio.run(make_key())
    env = {
        **process_env(db_url, tmp),
        "GENKEEP_AUTH_REQUIRED": "true",
        "GENKEEP_SERVE_WORKER": "false",
        "GENKEEP_MAX_HEADER_BYTES": str(MAX_HEADER),
        "GENKEEP_HEADER_TIMEOUT_S": str(TIMEOUT_S),
        "GENKEEP_BODY_TIMEOUT_S": str(TIMEOUT_S),
        "GENKEEP_DB_STATEMENT_TIMEOUT_S": str(TIMEOUT_S),
    }
    server = Server(env, tmp / "server.log").start()
    try:
        yield Edge(server, db_url, key)
    finally:
        server.stop()
        if request.node.session.testsfailed:
            print(f"\n===== server log ({request.param}) =====\n{server.log()}")
        if name:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _connect(edge: Edge) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", edge.server.port), timeout=LATE_S + 5)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def test_a_head_over_the_cap_is_answered_431_unread(edge: Edge) -> None:
    sock = _connect(edge)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEADER * 4))
        answer = _read_all(sock)  # answered and closed without waiting for the head's end
    finally:
        sock.close()
    assert _status(answer) == 431, answer[:200]
    assert b"application/problem+json" in answer
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["status"] == 431 and body["type"].endswith("header-too-large")
    # Many headers add up to the cap too; a head under it is served.
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(100))
    sock = _connect(edge)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
        assert _status(_read_all(sock)) == 431
    finally:
        sock.close()
    under = {f"X-H{i}": "v" * 100 for i in range(60)}
    assert httpx.get(edge.server.url + "/healthz", headers=under).status_code == 200


def test_half_sent_requests_are_answered_408_and_closed(edge: Edge) -> None:
    socks = [_connect(edge) for _ in range(30)]
    started = time.monotonic()
    try:
        for i, sock in enumerate(socks):
            if i % 3 == 0:  # a head that never ends
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            elif i % 3 == 1:  # a body that stops half-way
                head = b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                auth = f"Authorization: Bearer {edge.key}\r\n".encode()
                sock.sendall(head + auth + b"Content-Length: 100\r\n\r\n" + b'{"title": "')
            else:  # a head trickled a byte at a time stays within the head's deadline
                sock.sendall(b"G")
        for sock in socks[2::3]:
            for byte in b"ET /healthz HTTP/1.1\r\n":
                if time.monotonic() - started > TIMEOUT_S + 1:
                    break
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    break
                time.sleep(0.05)
        answers = [_read_all(sock) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    elapsed = time.monotonic() - started
    assert elapsed < LATE_S, f"half-sent requests held {elapsed:.1f}s"
    assert [_status(a) for a in answers] == [408] * 30, [a[:60] for a in answers]
    # The server kept serving, and a POST whose body stalled wrote nothing.
    listed = httpx.get(edge.server.url + "/v1/jobs", headers=edge.auth)
    assert listed.status_code == 200
    assert not [j for j in listed.json()["items"] if j["title"] == ""]


def test_a_connection_that_sends_nothing_is_not_a_half_sent_request(edge: Edge) -> None:
    """No 408 to a client that has not asked anything yet (a pool's spare connection)."""
    sock = _connect(edge)
    try:
        time.sleep(TIMEOUT_S + 0.5)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _status(_read_all(sock)) == 200
    finally:
        sock.close()


def test_a_request_blocked_in_the_database_answers_503_within_the_bound(edge: Edge) -> None:
    async def blocked() -> tuple[httpx.Response, float]:
        async with httpx.AsyncClient(base_url=edge.server.url, timeout=30) as client:
            started = time.monotonic()
            response = await client.post("/v1/jobs", json={"title": "blocked"}, headers=edge.auth)
            return response, time.monotonic() - started

    if edge.db_url.startswith("sqlite"):
        # Another process holds the write lock, as a long `genkeep ops` command could.
        holder = sqlite3.connect(edge.db_url.removeprefix("sqlite:///"), timeout=5)
        holder.isolation_level = None
        holder.execute("BEGIN IMMEDIATE")
        try:
            response, elapsed = asyncio.run(blocked())
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    else:

        async def locked() -> tuple[httpx.Response, float]:
            holder = await asyncpg.connect(edge.db_url)
            try:
                async with holder.transaction():
                    await holder.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
                    return await blocked()
            finally:
                await holder.close()

        response, elapsed = asyncio.run(locked())
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"]
    assert response.headers["content-type"] == "application/problem+json"
    assert TIMEOUT_S * 0.9 <= elapsed < LATE_S, elapsed
    after = httpx.post(
        edge.server.url + "/v1/jobs", json={"title": "after"}, headers=edge.auth, timeout=30
    )
    assert after.status_code == 201, after.text


def test_every_401_names_the_scheme(edge: Edge) -> None:
    with httpx.Client(base_url=edge.server.url) as client:
        answers = [
            client.get("/v1/jobs"),
            client.post("/v1/generate", json={"prompt": "p"}),
            client.post(
                "/v1/chat/completions",
                json={"model": "default", "messages": [{"role": "user", "content": "hi"}]},
            ),
            client.get("/v1/models"),
            client.get("/v1/models/default"),
            client.get("/v1/jobs", headers={"Authorization": "Bearer wrong"}),
            client.post("/v1/chat/completions", json={}, headers={"Authorization": "Basic x"}),
        ]
    for answer in answers:
        assert answer.status_code == 401, (answer.request.url, answer.text)
        assert answer.headers["www-authenticate"] == 'Bearer realm="genkeep"', answer.request.url


def test_405_lists_every_method_of_the_path(edge: Edge) -> None:
    with httpx.Client(base_url=edge.server.url, headers=edge.auth) as client:
        expected = {
            ("DELETE", "/v1/jobs"): {"GET", "POST"},
            ("PUT", "/v1/generate"): {"POST"},
            ("GET", "/v1/chat/completions"): {"POST"},
            ("POST", "/v1/models"): {"GET"},
            ("PUT", "/v1/jobs/x"): {"GET", "PATCH", "DELETE"},
            ("POST", "/console/static/core/api.js"): {"GET", "HEAD"},
        }
        for (method, path), methods in expected.items():
            answer = client.request(method, path)
            assert answer.status_code == 405, (method, path)
            allowed = {m.strip() for m in answer.headers["allow"].split(",")}
            assert allowed == methods, (method, path, allowed)


def test_if_match_star_lists_and_weak_tags(edge: Edge) -> None:
    with httpx.Client(base_url=edge.server.url, headers=edge.auth) as client:
        job = client.post("/v1/jobs", json={"title": "v1"}).json()
        url = f"/v1/jobs/{job['id']}"

        def patch(if_match: str, title: str) -> httpx.Response:
            return client.patch(url, json={"title": title}, headers={"If-Match": if_match})

        assert client.get(url).headers["etag"] == '"1"'
        # A weak tag never matches (strong comparison), even the current version's.
        weak = patch('W/"1"', "weak")
        assert weak.status_code == 412 and "weak" in weak.json()["detail"]
        assert patch('"7", W/"1"', "weak").status_code == 412
        # Any tag of a list matches; the write then needs that version still.
        listed = patch('"7", "1"', "listed")
        assert listed.status_code == 200 and listed.headers["etag"] == '"2"'
        assert patch('"1"', "stale").status_code == 412
        starred = patch("*", "starred")
        assert starred.status_code == 200 and starred.headers["etag"] == '"3"'
        for malformed in ("1", '"1" "2"', '"1",,', "W/1", ""):
            refused = patch(malformed, "malformed")
            assert refused.status_code == 422, (malformed, refused.text)
        assert client.get(url).json()["title"] == "starred"
        # * on a job that does not exist: 404 as without it.
        assert patch("*", "x").status_code == 200
        gone = client.patch("/v1/jobs/nope", json={"title": "x"}, headers={"If-Match": "*"})
        assert gone.status_code == 404


def test_openapi_states_what_is_refused(edge: Edge) -> None:
    document = httpx.get(edge.server.url + "/openapi.json").json()
    formats = document["components"]["schemas"]["ExportPayload"]["properties"]["formats"]
    assert formats["uniqueItems"] is True
    events = document["paths"]["/v1/tasks/{task_id}/events"]["get"]["parameters"]
    header = next(p for p in events if p["name"].lower() == "last-event-id")
    assert header["schema"]["pattern"] == "^[0-9]{0,19}$"
