"""Every way PostgreSQL can become unavailable answers 503 with Retry-After, on every route.

Each test runs a real ``genkeep serve`` on a database of a PostgreSQL server the module
starts for itself, then drops, renames or locks out that database (or stops the server),
and sends requests of every kind on one kept-alive connection: each is a 503, never a
500, and none closes the connection. SQLite's faults are in tests/unit/test_outage.py: a
running server keeps reading a removed file through the connections it holds open.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from genkeep.db.database import Database
from genkeep.db.drivers.errors import lost_connection
from genkeep.db.drivers.postgresql import ConnectionPool, is_closed
from genkeep.db.drivers.postgresql_errors import unavailable as postgres_unavailable
from genkeep.db.migrate import upgrade
from tests.conftest import process_env
from tests.support.postgres import admin
from tests.support.private_postgres import PrivatePostgres
from tests.support.server import Server

pytestmark = pytest.mark.e2e


def is_unavailable(error: BaseException) -> bool:
    """PostgresDriver.is_unavailable, without opening a driver."""
    return lost_connection(error) or postgres_unavailable(error)


RETRY_AFTER = "7"
ROUNDS = 3


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    with PrivatePostgres() as pg:
        yield pg


@dataclass
class App:
    """One database owned by a login role of its own (connection limits spare superusers)."""

    pg: PrivatePostgres
    name: str

    @property
    def url(self) -> str:
        return f"postgresql://{self.name}@127.0.0.1:{self.pg.port}/{self.name}"

    def sql(self, statement: str) -> None:
        asyncio.run(admin(self.pg.url(), statement))

    def disconnect(self) -> None:
        """End the server's open sessions, so its next statement needs a new log-in."""
        self.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{self.name}' AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def app_db(private_pg: PrivatePostgres) -> Iterator[App]:
    if not (private_pg.data / "postmaster.pid").exists():
        private_pg.start()  # a test before stopped it
    app = App(private_pg, f"app_{uuid.uuid4().hex[:10]}")
    app.sql(f'CREATE ROLE "{app.name}" LOGIN')
    app.sql(f'CREATE DATABASE "{app.name}" OWNER "{app.name}"')

    async def migrate() -> None:
        database = Database(app.url)
        try:
            await upgrade(database)
        finally:
            await database.dispose()

    asyncio.run(migrate())
    yield app
    if (private_pg.data / "postmaster.pid").exists():
        for name in (app.name, app.name + "_moved"):
            app.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        app.sql(f'DROP ROLE IF EXISTS "{app.name}"')


@pytest.fixture
def server(app_db: App, tmp_path: Path) -> Iterator[Server]:
    env = {**process_env(app_db.url, tmp_path), "GENKEEP_RETRY_AFTER_S": RETRY_AFTER}
    running = Server(env, tmp_path / "server.log")
    running.env["GENKEEP_BLOB_DIR"] = str(tmp_path / "blobs")
    try:
        yield running.start()
    finally:
        running.stop()
        print(running.log()[-4000:])


def _drop(app: App) -> None:
    app.sql(f'DROP DATABASE "{app.name}" WITH (FORCE)')


def _rename(app: App) -> None:
    # Locked out first, so the server cannot log in again between the kill and the rename.
    app.sql(f'ALTER DATABASE "{app.name}" ALLOW_CONNECTIONS false')
    app.disconnect()
    app.sql(f'ALTER DATABASE "{app.name}" RENAME TO "{app.name}_moved"')
    app.sql(f'ALTER DATABASE "{app.name}_moved" ALLOW_CONNECTIONS true')


def _disallow_connections(app: App) -> None:
    app.sql(f'ALTER DATABASE "{app.name}" ALLOW_CONNECTIONS false')
    app.disconnect()


def _connection_limit_zero(app: App) -> None:
    app.sql(f'ALTER DATABASE "{app.name}" CONNECTION LIMIT 0')
    app.disconnect()


def _login_refused(app: App) -> None:
    app.sql(f'ALTER ROLE "{app.name}" NOLOGIN')
    app.disconnect()


def _server_stopped(app: App) -> None:
    app.pg.stop("fast")


FAULTS: dict[str, Callable[[App], None]] = {
    "dropped": _drop,  # 3D000 database does not exist
    "renamed": _rename,  # 3D000 too, for the name the server knows
    "allow-connections-false": _disallow_connections,  # 55000 does not allow connections
    "connection-limit-0": _connection_limit_zero,  # 53300 too many connections
    "login-refused": _login_refused,  # 28000 role is not permitted to log in
    "server-stopped": _server_stopped,  # connection refused
}


def _chat(content: str, **extra: Any) -> dict[str, Any]:
    return {"model": "default", "messages": [{"role": "user", "content": content}], **extra}


def _requests(job_id: str, task_id: str, n: int) -> list[tuple[str, str, str, Any]]:
    """(name, method, path, JSON body) of one round over every kind of route."""
    return [
        ("generate hit", "POST", "/v1/generate", {"prompt": "warm"}),
        ("generate miss", "POST", "/v1/generate", {"prompt": f"miss {n}"}),
        ("chat hit", "POST", "/v1/chat/completions", _chat("warm")),
        ("chat miss", "POST", "/v1/chat/completions", _chat(f"miss {n}")),
        ("chat stream", "POST", "/v1/chat/completions", _chat(f"s {n}", stream=True)),
        ("job read", "GET", f"/v1/jobs/{job_id}", None),
        ("jobs list", "GET", "/v1/jobs", None),
        ("task write", "POST", f"/v1/jobs/{job_id}/tasks", {"kind": "noop", "payload": {}}),
        ("task read", "GET", f"/v1/tasks/{task_id}", None),
        ("task events", "GET", f"/v1/tasks/{task_id}/events", None),
        ("readyz", "GET", "/readyz", None),
    ]


def _local_port(response: httpx.Response) -> int:
    """The client's port of the connection that carried ``response``."""
    stream = response.extensions["network_stream"]
    return int(stream.get_extra_info("client_addr")[1])


@pytest.mark.parametrize("fault", list(FAULTS))
def test_an_unavailable_database_answers_503_on_every_route(
    fault: str, app_db: App, server: Server
) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job_id, task_id, port = _warm(client)
        FAULTS[fault](app_db)
        wrong = [
            f"round {n} {name}: {complaint}"
            for n, name, response in _rounds(client, job_id, task_id)
            for complaint in _complaints(name, response, port)
        ]
    assert not wrong, "\n".join(wrong)
    assert "unhandled error" not in server.log()


def _warm(client: httpx.Client) -> tuple[str, str, int]:
    """A job and a task to read, cache hits warmed; the ids and the connection's port."""
    job = client.post("/v1/jobs", json={"title": "faults"})
    assert job.status_code == 201, job.text
    job_id = job.json()["id"]
    task = client.post(
        f"/v1/jobs/{job_id}/tasks",
        json={"kind": "noop", "payload": {}},
        headers={"Idempotency-Key": "before"},
    )
    assert task.status_code in (200, 201), task.text
    # The cache hits are served from the hot path's own connections once warmed.
    for _ in range(2):
        assert client.post("/v1/generate", json={"prompt": "warm"}).status_code == 200
        assert client.post("/v1/chat/completions", json=_chat("warm")).status_code == 200
    return job_id, task.json()["id"], _local_port(client.get("/readyz"))


def _rounds(
    client: httpx.Client, job_id: str, task_id: str
) -> Iterator[tuple[int, str, httpx.Response]]:
    for n in range(ROUNDS):
        for name, method, path, body in _requests(job_id, task_id, n):
            headers = {"Idempotency-Key": f"during {n}"}
            yield n, name, client.request(method, path, json=body, headers=headers)


def _complaints(name: str, response: httpx.Response, port: int) -> list[str]:
    """What is wrong with ``response`` as the answer of an unavailable database."""
    if response.status_code != 503:
        return [f"{response.status_code} {response.text[:120]}"]
    found = []
    if response.headers.get("retry-after") != RETRY_AFTER:
        found.append(f"Retry-After {response.headers.get('retry-after')!r}")
    if response.headers.get("connection", "").lower() == "close" or _local_port(response) != port:
        found.append("the connection was not kept")
    body = response.json()
    if name == "readyz":
        named = body.get("status") == "unready"
    elif name.startswith("chat"):
        # OpenAI's error object, so an SDK raises its own error with the message.
        error = body.get("error", {})
        named = (error.get("code"), error.get("type")) == ("database_unavailable", "server_error")
    else:
        named = response.headers["content-type"] == "application/problem+json"
        named = named and body.get("code") == "database-unavailable"
    return found if named else [*found, f"body {body}"]


def test_a_statement_refused_for_its_own_state_is_not_an_outage(app_db: App) -> None:
    """55000 means "database does not allow connections" only at log-in; from a statement
    (a sequence read before use) it is a bug, and bugs stay 500s."""

    async def errors() -> list[BaseException]:
        connection = await asyncpg.connect(app_db.url)
        found: list[BaseException] = []
        try:
            await connection.execute("CREATE SEQUENCE unused")
            for statement in ("SELECT currval('unused')", "SELEC 1", "SELECT 1/0"):
                try:
                    await connection.fetch(statement)
                except asyncpg.PostgresError as exc:
                    found.append(exc)
        finally:
            await connection.close()
        return found

    found = asyncio.run(errors())
    assert [getattr(e, "sqlstate", None) for e in found] == ["55000", "42601", "22012"]
    assert not any(is_unavailable(e) for e in found)


def test_a_refused_log_in_is_an_outage(app_db: App) -> None:
    """The same SQLSTATE 55000 raised by asyncpg's log-in is one."""
    _disallow_connections(app_db)

    async def refused() -> BaseException:
        try:
            await asyncpg.connect(app_db.url)
        except Exception as exc:
            return exc
        raise AssertionError("a database that does not allow connections let us in")

    error = asyncio.run(refused())
    assert getattr(error, "sqlstate", None) == "55000"
    assert postgres_unavailable(error)


def test_a_pooled_connection_the_server_closed_fails_as_an_outage(app_db: App) -> None:
    """The server ends an idle session of the raw asyncpg pool (terminated, database
    dropped): the next statement on it fails as a lost connection, not as asyncpg's bare
    client error."""

    async def failure() -> BaseException:
        pool = ConnectionPool({"dsn": app_db.url}, 1, json_codecs=False)
        try:
            async with pool.connection() as connection:
                await connection.fetchval("SELECT 1")
                await admin(
                    app_db.pg.url(),
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{app_db.name}' AND pid <> pg_backend_pid()",
                )
                for _ in range(100):
                    if is_closed(connection):
                        break
                    await asyncio.sleep(0.05)
                await connection.fetchval("SELECT 1")
        except Exception as exc:
            return exc
        finally:
            await pool.close()
        raise AssertionError("a statement on a closed connection succeeded")

    error = asyncio.run(failure())
    assert is_unavailable(error), repr(error)


def test_a_read_only_database_answers_writes_503_and_reads_200(app_db: App, server: Server) -> None:
    """Writes locked out (as on a standby after failover): SQLSTATE 25006 is an outage for
    the writes; the reads go on."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job_id, task_id, port = _warm(client)
        app_db.sql(f'ALTER DATABASE "{app_db.name}" SET default_transaction_read_only = on')
        app_db.disconnect()
        statuses = {}
        for n, name, response in _rounds(client, job_id, task_id):
            statuses[name] = response.status_code
            if name in ("generate miss", "chat miss", "task write"):
                assert not _complaints(name, response, port), (n, name, response.text)
    reads = (
        "generate hit",
        "chat hit",
        "job read",
        "jobs list",
        "task read",
        "task events",
        "readyz",
    )
    assert {name: statuses[name] for name in reads} == dict.fromkeys(reads, 200)
    assert "unhandled error" not in server.log()
