"""The test harness itself: unit tests alone need no PostgreSQL; any run with a database
test fails at once, naming GENKEEP_TEST_DATABASE_URL, when the server is unreachable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOWHERE = "postgresql://postgres@127.0.0.1:1/postgres"  # nothing listens on port 1


def pytest_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            *args,
        ],
        cwd=REPO,
        env={**os.environ, "GENKEEP_TEST_DATABASE_URL": NOWHERE},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_unit_tests_run_without_postgresql() -> None:
    done = pytest_run("tests/unit/test_normalize.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout and "skipped" not in done.stdout


def test_a_run_with_database_tests_fails_without_postgresql() -> None:
    done = pytest_run("tests/unit/test_normalize.py", "tests/integration/test_auth.py")
    said = done.stdout + done.stderr
    assert done.returncode == 3, said
    assert "PostgreSQL is unreachable" in said and "GENKEEP_TEST_DATABASE_URL" in said
    assert " passed" not in said and "skipped" not in said
