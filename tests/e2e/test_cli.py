"""The ``genkeep`` command line as a user runs it: subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.server import free_port, run_cli

pytestmark = pytest.mark.e2e


def env_for(db_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"GENKEEP_DATABASE_URL": db_url, "GENKEEP_DATA_DIR": str(tmp_path / "var"), **extra}


def test_generate_twice_from_the_shell(db_url: str, tmp_path: Path) -> None:
    env = env_for(db_url, tmp_path)
    first = run_cli(["generate", "Plan a launch", "--json"], env)
    assert first.returncode == 0, first.stderr
    second = run_cli(["generate", "  PLAN a launch", "--json"], env)
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    assert not one["cached"] and two["cached"] and one["result_id"] == two["result_id"]
    plain = run_cli(["generate", "plan a launch"], env)
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
    run_cli(["generate", "one"], env)
    duplicates = run_cli(["ops", "duplicates"], env)
    assert duplicates.returncode == 0 and "no duplicate prompts" in duplicates.stdout


def test_fresh_database_needs_upgrade_before_serve(tmp_path: Path) -> None:
    env = env_for(f"sqlite:///{tmp_path / 'fresh.db'}", tmp_path)
    current = run_cli(["db", "current"], env)
    assert current.returncode == 1 and "genkeep db upgrade" in current.stdout
    serve = run_cli(["serve", "--port", str(free_port())], env, timeout=60)
    assert serve.returncode != 0
    assert "run `genkeep db upgrade`" in serve.stderr
    upgraded = run_cli(["db", "upgrade"], env)
    assert upgraded.returncode == 0 and "revision" in upgraded.stdout
    assert run_cli(["db", "current"], env).returncode == 0


def test_production_refuses_a_temporary_database(tmp_path: Path) -> None:
    env = env_for("sqlite:///:memory:", tmp_path, GENKEEP_ENV="production")
    serve = run_cli(["serve", "--port", str(free_port())], env, timeout=60)
    assert serve.returncode != 0 and "refusing to run in production" in serve.stderr
