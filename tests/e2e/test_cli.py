"""The ``genkeep`` command line as a user runs it: subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import tomllib
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from genkeep.config import Settings
from genkeep.db.artifacts import NewArtifact
from genkeep.db.database import Database
from genkeep.db.jobs import Audit
from genkeep.db.keys import ApiKeyStore
from genkeep.db.types import utcnow
from genkeep.services import close_services, open_services
from tests.conftest import admin_url
from tests.support.postgres import admin, dsn
from tests.support.server import free_port, run_cli

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "src" / "genkeep" / "extract" / "samples"


def env_for(db_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"GENKEEP_DATABASE_URL": db_url, "GENKEEP_DATA_DIR": str(tmp_path / "var"), **extra}


def test_generate_twice_from_the_shell(db_url: str, tmp_path: Path) -> None:
    env = env_for(db_url, tmp_path)
    first = run_cli(["generate", "Plan a launch", "--json"], env)
    assert first.returncode == 0, first.stderr
    second = run_cli(["generate", "  PLAN a launch", "--json"], env)
    assert second.returncode == 0, second.stderr
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    assert not one["cached"] and two["cached"] and one["result_id"] == two["result_id"]
    plain = run_cli(["generate", "plan a launch"], env)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == one["content"] and "cached" in plain.stderr


def test_bad_input_is_one_line_and_nonzero(db_url: str, tmp_path: Path) -> None:
    env = env_for(db_url, tmp_path)
    for args in (["generate", "   "], ["generate", "ok", "--profile", "missing"]):
        result = run_cli(args, env)
        assert result.returncode != 0
        assert result.stderr.strip().startswith("error:")
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_db_current_and_duplicates(db_url: str, tmp_path: Path) -> None:
    env = env_for(db_url, tmp_path)
    current = run_cli(["db", "current"], env)
    assert current.returncode == 0 and "up to date" in current.stdout
    assert run_cli(["generate", "one"], env).returncode == 0
    duplicates = run_cli(["ops", "duplicates"], env)
    assert duplicates.returncode == 0 and "no duplicate prompts" in duplicates.stdout


def test_fresh_sqlite_is_made_on_first_use(tmp_path: Path) -> None:
    env = env_for(f"sqlite:///{tmp_path / 'fresh.db'}", tmp_path)
    current = run_cli(["db", "current"], env)  # reports, changes nothing
    assert current.returncode == 1 and "genkeep db upgrade" in current.stdout
    listed = run_cli(["runs", "list"], env)
    assert listed.returncode == 0, listed.stderr
    assert f"created the database {tmp_path / 'fresh.db'}" in listed.stderr
    assert run_cli(["db", "current"], env).returncode == 0
    again = run_cli(["runs", "list"], env)
    assert again.returncode == 0 and "created" not in again.stderr


def test_fresh_postgresql_needs_upgrade_before_serve(tmp_path: Path) -> None:
    name = f"genkeep_fresh_{uuid.uuid4().hex[:10]}"
    asyncio.run(admin(admin_url(), f'CREATE DATABASE "{name}"'))
    try:
        env = env_for(dsn(admin_url(), name), tmp_path)
        serve = run_cli(["serve", "--port", str(free_port())], env, timeout=60)
        assert serve.returncode != 0
        assert "run `genkeep db upgrade`" in serve.stderr and "Traceback" not in serve.stderr
        one_error_line(run_cli(["runs", "list"], env))  # no command migrates PostgreSQL
        upgraded = run_cli(["db", "upgrade"], env)
        assert upgraded.returncode == 0 and "revision" in upgraded.stdout
        assert run_cli(["db", "current"], env).returncode == 0
        assert run_cli(["runs", "list"], env).returncode == 0
    finally:
        asyncio.run(admin(admin_url(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_production_refuses_a_temporary_database(tmp_path: Path) -> None:
    env = env_for("sqlite:///:memory:", tmp_path, GENKEEP_ENV="production")
    serve = run_cli(["serve", "--port", str(free_port())], env, timeout=60)
    assert serve.returncode != 0 and "refusing to run in production" in serve.stderr


def table_rows(output: str) -> list[list[str]]:
    """The body rows of a rich table as printed to a pipe, one list of cells per row."""
    return [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in output.splitlines()
        if line.startswith("│")
    ]


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def authenticate(db_url: str, token: str) -> str | None:
    async def check() -> str | None:
        database = Database(db_url)
        try:
            return await ApiKeyStore(database).authenticate(token)
        finally:
            await database.dispose()

    return asyncio.run(check())


def query(db_url: str, sql: str) -> list[tuple[object, ...]]:
    async def read() -> list[tuple[object, ...]]:
        database = Database(db_url)
        try:
            async with database.reading() as session:
                return [tuple(row) for row in (await session.execute(text(sql))).all()]
        finally:
            await database.dispose()

    return asyncio.run(read())


def test_keys_create_list_revoke(db_url: str, tmp_path: Path) -> None:
    # Wide enough that rich does not shorten the timestamps in `keys list`.
    env = env_for(db_url, tmp_path, COLUMNS="200")
    created = run_cli(["keys", "create", "--owner", "alice", "--name", "laptop"], env)
    assert created.returncode == 0, created.stderr
    match = re.fullmatch(r"gk_([0-9a-f]{16})_(\S+)\n", created.stdout)
    assert match, created.stdout
    token, key_id, secret = created.stdout.strip(), match[1], match[2]
    assert f"key {key_id} for owner alice" in created.stderr and token not in created.stderr
    assert authenticate(db_url, token) == "alice"

    listed = run_cli(["keys", "list"], env)
    assert listed.returncode == 0, listed.stderr
    assert secret not in listed.stdout and "gk_" not in listed.stdout
    [row] = table_rows(listed.stdout)
    assert row[:3] == [key_id, "alice", "laptop"] and row[4] == ""

    revoked = run_cli(["keys", "revoke", key_id], env)
    assert revoked.returncode == 0 and f"revoked key {key_id}" in revoked.stdout
    assert authenticate(db_url, token) is None
    # A revoked key stays listed, with the time it was revoked.
    relisted = run_cli(["keys", "list"], env)
    assert relisted.returncode == 0, relisted.stderr
    [row] = table_rows(relisted.stdout)
    assert row[0] == key_id
    assert datetime.fromisoformat(row[4]) >= datetime.fromisoformat(row[3])

    again = one_error_line(run_cli(["keys", "revoke", key_id], env))
    assert again == f"error: no active key {key_id}"
    unknown = one_error_line(run_cli(["keys", "revoke", "0123456789abcdef"], env))
    assert unknown == "error: no active key 0123456789abcdef"


def test_ops_sweep_deletes_expired_non_latest_and_orphans(
    db_url: str, settings: Settings, tmp_path: Path
) -> None:
    blobs = tmp_path / "var" / "blobs"  # the CLI's default blob folder for this data dir

    async def seed() -> tuple[list[str], str]:
        services = await open_services(settings)
        try:
            audit = Audit(actor="test", trace_id="0af7651916cd43dd8448eb211c80319c")
            job = await services.jobs.create("alice", {"title": "Report"}, audit)
            keys = []
            for i in range(2):  # versions 1 and 2 of kind md, both expired; 2 is the latest
                key = f"owners/alice/jobs/{job.id}/tasks/t{i}/a1/out.md"
                info = await services.blobs.put(key, f"v{i}".encode(), content_type="text/plain")
                new = NewArtifact("md", key, "out.md", "text/plain", info.size, info.sha256)
                async with services.database.transaction() as session:
                    artifact = await services.artifacts.add(session, job, None, new)
                    artifact.expires_at = utcnow() - timedelta(days=1)
                keys.append(key)
            orphan = f"owners/alice/jobs/{job.id}/tasks/gone/a1/out.md"
            await services.blobs.put(orphan, b"orphan", content_type="text/plain")
            return [*keys, orphan], job.id
        finally:
            await close_services(services)

    async def versions(job_id: str) -> list[int]:
        services = await open_services(settings)
        try:
            return [a.version for a in await services.artifacts.list_visible("alice", job_id)]
        finally:
            await close_services(services)

    (old, latest, orphan), job_id = asyncio.run(seed())
    assert all((blobs / key).is_file() for key in (old, latest, orphan))
    env = env_for(db_url, tmp_path)
    swept = run_cli(["ops", "sweep"], env)
    assert swept.returncode == 0, swept.stderr
    assert swept.stdout.splitlines() == [
        "artifacts deleted: 1, blobs deleted: 1, orphan blobs deleted: 1",
        "unreferenced job files deleted: 0",
        "deletions finished: 0",
        "retention deleted: task_changes 0, run_changes 0, tasks 0, run_batches 0, llm_cache 0,"
        " llm_flights 0",
    ]
    assert not (blobs / old).exists() and not (blobs / orphan).exists()
    assert (blobs / latest).read_bytes() == b"v1"
    assert asyncio.run(versions(job_id)) == [2]
    again = run_cli(["ops", "sweep"], env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0] == (
        "artifacts deleted: 0, blobs deleted: 0, orphan blobs deleted: 0"
    )


def test_runs_list_and_cancel(db_url: str, tmp_path: Path) -> None:
    # Wide enough that rich does not shorten the run ids in `runs list`.
    env = env_for(db_url, tmp_path, COLUMNS="200")
    extracted = run_cli(
        ["extract", str(SAMPLES / "text.md"), "--ontology", str(SAMPLES / "ontology.ttl")], env
    )
    assert extracted.returncode == 0, extracted.stderr
    done = re.search(r"run (\S+) completed: (\d+) batch(?:es)?, (\d+) entities", extracted.stderr)
    assert done, extracted.stderr
    run_id, batches, entities = done.groups()
    assert int(entities) > 0

    listed = run_cli(["runs", "list"], env)
    assert listed.returncode == 0, listed.stderr
    [row] = table_rows(listed.stdout)
    assert row[:5] == [run_id, "completed", "text.md", f"{batches}/{batches}", entities]

    finished = one_error_line(run_cli(["runs", "cancel", run_id], env))
    assert finished == f"error: run {run_id} is already completed"
    [(status,)] = query(db_url, "SELECT status FROM runs")
    assert status == "completed"  # the refused cancel changed nothing
    missing = "00000000-0000-0000-0000-000000000000"
    unknown = one_error_line(run_cli(["runs", "cancel", missing], env))
    assert unknown == f"error: run {missing} not found"


def outside(tmp_path: Path) -> Path:
    """A folder outside the checkout to run `genkeep` from: no .env, no ./var of the repo."""
    folder = tmp_path / "elsewhere"
    folder.mkdir(exist_ok=True)
    return folder


def test_version_is_the_package_version(tmp_path: Path) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    shown = run_cli(["--version"], {}, cwd=outside(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == f"genkeep {project['version']}\n"


def test_runs_and_keys_as_json(db_url: str, tmp_path: Path) -> None:
    env = env_for(db_url, tmp_path)
    here = outside(tmp_path)
    extracted = run_cli(
        ["extract", str(SAMPLES / "text.md"), "--ontology", str(SAMPLES / "ontology.ttl")],
        env,
        cwd=here,
    )
    assert extracted.returncode == 0, extracted.stderr
    [(stored_id, entities)] = query(db_url, "SELECT id, entities_found FROM runs")
    run_id = str(stored_id)

    listed = run_cli(["runs", "list", "--json"], env, cwd=here)
    assert listed.returncode == 0, listed.stderr
    [item] = json.loads(listed.stdout)  # the whole of stdout is one JSON document
    assert item["id"] == run_id and item["status"] == "completed"
    assert item["entities_found"] == entities and item["progress"] == 1.0
    assert set(item["outputs"]) >= {"turtle", "jsonld", "jsonl"}

    shown = run_cli(["runs", "show", run_id, "--json"], env, cwd=here)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == item
    assert datetime.fromisoformat(item["created_at"]) <= datetime.fromisoformat(item["finished_at"])
    # The table shows the stored documents as JSON too, never a Python dict.
    table = run_cli(["runs", "show", run_id], env, cwd=here)
    assert table.returncode == 0 and "{'" not in table.stdout and '{"' in table.stdout

    created = run_cli(["keys", "create", "--owner", "alice", "--name", "laptop"], env, cwd=here)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    keys = run_cli(["keys", "list", "--json"], env, cwd=here)
    assert keys.returncode == 0, keys.stderr
    [key] = json.loads(keys.stdout)
    assert token.startswith(f"gk_{key['id']}_") and token not in keys.stdout
    assert key["owner"] == "alice" and key["name"] == "laptop" and key["revoked_at"] is None
    datetime.fromisoformat(key["created_at"])
    assert json.loads(run_cli(["keys", "list", "--owner", "bob", "--json"], env).stdout) == []


def unreachable_url() -> tuple[str, int]:
    port = free_port()  # bound and released: nothing listens there
    return f"postgresql://postgres@127.0.0.1:{port}/genkeep", port


def test_database_errors_name_the_database_and_where_it_is(tmp_path: Path) -> None:
    url, port = unreachable_url()
    missing = f"genkeep_missing_{uuid.uuid4().hex[:10]}"
    server = make_url(admin_url())
    cases = {
        url: (f'database "genkeep" on 127.0.0.1:{port}', "connection refused"),
        dsn(admin_url(), missing): (
            f'database "{missing}" on {server.host}:{server.port}',
            f'database "{missing}" does not exist',
        ),
    }
    for database, (where, why) in cases.items():
        for args in (["runs", "list"], ["keys", "list"], ["db", "upgrade"]):
            result = run_cli(args, env_for(database, tmp_path), cwd=outside(tmp_path))
            line = one_error_line(result)
            assert where in line and why in line, line
            for leak in ("sqlalche", "Background on this error", "asyncpg", "OperationalError"):
                assert leak not in line, line


def test_info_shows_where_data_lives_while_the_database_is_down(tmp_path: Path) -> None:
    url, port = unreachable_url()
    shown = run_cli(["info"], env_for(url, tmp_path), cwd=outside(tmp_path))
    rows = dict(
        line.split(None, 1) for line in shown.stdout.replace("data dir", "data_dir").splitlines()
    )
    assert rows["data_dir"] == str(tmp_path / "var")
    assert rows["blobs"] == str(tmp_path / "var" / "blobs")
    assert f"127.0.0.1:{port}/genkeep (unavailable)" in rows["database"]
    assert f'database "genkeep" on 127.0.0.1:{port}: connection refused' in one_error_line(shown)


def test_info_leaves_a_new_data_folder_unmade(tmp_path: Path) -> None:
    env = {"GENKEEP_DATA_DIR": str(tmp_path / "data")}
    shown = run_cli(["info"], env, cwd=outside(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert "not created yet" in shown.stdout and not (tmp_path / "data").exists()


def test_a_database_in_a_missing_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "missing" / "folder"
    env = env_for(f"sqlite:///{folder / 'x.db'}", tmp_path)
    for args in (["runs", "list"], ["db", "upgrade"], ["info"]):
        line = one_error_line(run_cli(args, env, cwd=outside(tmp_path)))
        assert f"no folder {folder} for the database {folder / 'x.db'}" in line, line
        assert not (tmp_path / "missing").exists()
    # The data folder is genkeep's own: made on first use, with the database in it.
    data = tmp_path / "new" / "data"
    made = run_cli(["runs", "list"], {"GENKEEP_DATA_DIR": str(data)}, cwd=outside(tmp_path))
    assert made.returncode == 0, made.stderr
    assert (data / "genkeep.db").is_file()


def command_paths() -> list[list[str]]:
    """Every command and group of `genkeep`, as the words that name it."""
    from typer.main import get_command

    from genkeep.cli.root import app

    def walk(command: Any, path: list[str]) -> Iterator[list[str]]:
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    return list(walk(get_command(app), []))


def help_page(path: list[str]) -> str:
    """``genkeep PATH --help`` rendered in this process, 200 columns wide."""
    from typer.testing import CliRunner

    from genkeep.cli.root import app

    shown = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"}, prog_name="genkeep")
    assert shown.exit_code == 0, shown.output
    return shown.output


def test_every_help_page_shows_an_example() -> None:
    # Rendered in-process: one process per page cost minutes; the page below proves the
    # in-process rendering is the one a user's `genkeep … --help` prints.
    paths = command_paths()
    assert ["runs", "show"] in paths and ["db"] in paths and len(paths) > 15
    for path in paths:
        page = help_page(path)
        example = page[page.find("Example") :]
        assert example.startswith(("Example:", "Examples:")), (path, page)
        assert " ".join(["genkeep", *path]) in example, (path, page)


@pytest.mark.parametrize("path", [[], ["runs", "show"]])
def test_a_help_page_is_the_one_genkeep_prints(path: list[str], tmp_path: Path) -> None:
    shown = run_cli([*path, "--help"], {"COLUMNS": "200"}, cwd=outside(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == help_page(path)
