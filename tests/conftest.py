"""Test harness: database tests run on SQLite and on a real PostgreSQL server.

PostgreSQL comes from ``GENKEEP_TEST_DATABASE_URL`` (default: the local server as user
postgres). The session migrates one template database; each test gets a throwaway copy
that is dropped after it. An unreachable server fails any run with a test outside
tests/unit; it never skips. Unit tests alone run without it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from genkeep.config import Settings
from genkeep.db.database import Database
from genkeep.db.migrate import upgrade
from tests.support.postgres import DEFAULT_ADMIN_URL, admin, dsn
from tests.support.server import Server, WorkerProcess

# Fixtures shared by modules in different folders.
pytest_plugins = ["tests.support.azurite"]

BACKENDS = ("sqlite", "postgresql")

# A run that names no extractor gets the builtin one throughout the suite, in process and in
# subprocesses: with spaCy installed the default would be ner, whose pipeline costs each test
# fifty times the CPU. The ner tests name it (tests/*/test_ner_*.py).
os.environ.setdefault("GENKEEP_EXTRACT_DEFAULT", "builtin")


def admin_url() -> str:
    return os.environ.get("GENKEEP_TEST_DATABASE_URL", DEFAULT_ADMIN_URL)


async def _admin(sql: str) -> None:
    await admin(admin_url(), sql)


UNIT = Path(__file__).resolve().parent / "unit"
DATABASE_FIXTURES = {"templates", "db_url", "empty_db_url"}


def needs_postgresql(item: pytest.Item) -> bool:
    """Every test outside tests/unit may reach PostgreSQL (some through admin_url itself)."""
    outside_unit = UNIT not in item.path.parents
    return outside_unit or bool(DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())))


def pytest_collection_finish(session: pytest.Session) -> None:
    # Checked once the tests are known: a run of unit tests alone needs no server.
    if not any(needs_postgresql(item) for item in session.items):
        return
    try:
        asyncio.run(_admin("SELECT 1"))
    except Exception as exc:
        pytest.exit(
            f"PostgreSQL is unreachable at {make_url(admin_url()).render_as_string()} ({exc}). "
            "The tests need a real PostgreSQL server where they may create and drop databases: "
            "start one, or point GENKEEP_TEST_DATABASE_URL at one "
            "(e.g. postgresql://postgres@127.0.0.1:5432/postgres).",
            returncode=3,
        )


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One migrated database per backend, copied for each test."""
    sqlite_file = tmp_path_factory.mktemp("template") / "template.db"
    pg_name = f"genkeep_tpl_{uuid.uuid4().hex[:10]}"

    async def build() -> None:
        await _admin(f'CREATE DATABASE "{pg_name}"')
        for url in (f"sqlite:///{sqlite_file}", dsn(admin_url(), pg_name)):
            database = Database(url)
            try:
                await upgrade(database)
            finally:
                await database.dispose()

    asyncio.run(build())
    try:
        yield {"sqlite": str(sqlite_file), "postgresql": pg_name}
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))


def _admin_now(sql: str) -> None:
    """Run one admin statement from a thread of its own: a sync Playwright (the console
    tests share one browser per module) keeps an event loop running in this one, and
    asyncio.run refuses to start another there."""
    work: Coroutine[Any, Any, None] = _admin(sql)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, work).result()


@pytest.fixture(params=BACKENDS)
def db_url(
    request: pytest.FixtureRequest, templates: dict[str, str], tmp_path: Path
) -> Iterator[str]:
    """A freshly migrated, throwaway database on each backend."""
    if request.param == "sqlite":
        target = tmp_path / "genkeep.db"
        shutil.copyfile(templates["sqlite"], target)
        yield f"sqlite:///{target}"
        return
    name = f"genkeep_test_{uuid.uuid4().hex[:10]}"
    _admin_now(f'CREATE DATABASE "{name}" TEMPLATE "{templates["postgresql"]}"')
    try:
        yield dsn(admin_url(), name)
    finally:
        _admin_now(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database with no schema at all, as a new deployment starts from."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"genkeep_empty_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield dsn(admin_url(), name)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def backend(db_url: str) -> str:
    return "sqlite" if db_url.startswith("sqlite") else "postgresql"


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    # The test task kinds (tests/support/handlers) as an extension, as the test servers have them.
    return Settings(
        database_url=db_url,
        data_dir=tmp_path / "var",
        task_modules=["tests.support.handlers"],
        _env_file=None,
    )


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    db = Database(db_url)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


REPO = Path(__file__).resolve().parent.parent


def process_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    """What every genkeep subprocess of one test shares: database, blobs, signing key."""
    return {
        "GENKEEP_DATABASE_URL": db_url,
        "GENKEEP_DATA_DIR": str(tmp_path / "var"),
        "GENKEEP_LOG_LEVEL": "warning",
        "GENKEEP_TASK_MODULES": '["tests.support.handlers"]',
        # This clone's sources, whichever checkout the environment was installed from.
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
        "GENKEEP_SIGNING_KEY": "e2e-signing-key-shared-by-every-process",
    }


@pytest.fixture
def servers(
    request: pytest.FixtureRequest, db_url: str, tmp_path: Path
) -> Iterator[Callable[..., Server]]:
    """Start real ``genkeep serve`` processes on this test's database; logs shown on failure."""
    started: list[Server] = []

    def start(workers: int = 1, prefix: list[str] | None = None, **env: str) -> Server:
        index = len(started)
        server = Server(
            {**process_env(db_url, tmp_path), **env},
            tmp_path / f"server{index}.log",
            workers=workers,
            prefix=prefix,
        )
        # No GENKEEP_PUBLIC_URL: download URLs follow `serve --port`, as for a user.
        server.env.pop("GENKEEP_PUBLIC_URL", None)
        server.env["GENKEEP_DATA_DIR"] = env.get("GENKEEP_DATA_DIR", str(tmp_path / f"var{index}"))
        server.env.setdefault("GENKEEP_BLOB_DIR", str(tmp_path / "blobs"))
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
    _keep_logs(request, [(f"server {i} ({s.url})", s.log()) for i, s in enumerate(started)])


@pytest.fixture
def workers(
    request: pytest.FixtureRequest, db_url: str, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real ``genkeep worker`` processes on this test's database."""
    started: list[WorkerProcess] = []

    def start(concurrency: int = 4, prefix: list[str] | None = None, **env: str) -> WorkerProcess:
        base = {**process_env(db_url, tmp_path), "GENKEEP_BLOB_DIR": str(tmp_path / "blobs")}
        process = WorkerProcess(
            {**base, **env}, tmp_path / f"worker{len(started)}.log", concurrency, prefix
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()
    _keep_logs(request, [(f"worker {i} (pid {w.pid})", w.log()) for i, w in enumerate(started)])


def _keep_logs(request: pytest.FixtureRequest, logs: list[tuple[str, str]]) -> None:
    """On failure, print each process's log (CI output shows it) and save it to test-artifacts/."""
    report = getattr(request.node, "report_call", None)
    if report is None or not report.failed:
        return
    ARTIFACTS.mkdir(exist_ok=True)
    for name, text in logs:
        safe = f"{request.node.name}-{name.split()[0]}{name.split()[1]}.log".replace("/", "_")
        (ARTIFACTS / safe).write_text(text)
        print(f"\n===== {name} log =====\n{text}")
