"""The OpenAPI document is the contract: schemathesis holds a real server to it (I14).

Bounded here (``make test``); ``make fuzz`` runs the same with GENKEEP_FUZZ_EXAMPLES in
the thousands. The seed is fixed and printed; GENKEEP_FUZZ_SEED replays another.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.contract import CHECKS, run_schemathesis
from tests.support.server import Server, run_cli

pytestmark = pytest.mark.e2e

SEED = int(os.environ.get("GENKEEP_FUZZ_SEED", "20261130"))
EXAMPLES = int(os.environ.get("GENKEEP_FUZZ_EXAMPLES", "15"))


def test_the_server_keeps_its_openapi_contract(
    servers: Callable[..., Server], tmp_path: Path, backend: str
) -> None:
    server = servers(GENKEEP_AUTH_REQUIRED="true", GENKEEP_TASK_MODULES="[]")
    created = run_cli(["keys", "create", "--owner", "alice", "--name", "contract"], server.env)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]

    figures = run_schemathesis(
        server.url, token, max_examples=EXAMPLES, seed=SEED, workdir=tmp_path
    )

    print(f"\n{backend}: {figures.line()}")
    log = (tmp_path / "schemathesis.log").read_text()
    spec = httpx.get(f"{server.url}/openapi.json").json()
    operations = sum(len(methods) for methods in spec["paths"].values())
    # Every operation the document lists was fuzzed, and there are as many as we know of.
    assert figures.operations == operations >= 33, log[-4000:]
    # Fuzzing stops early where an operation has few distinct inputs (GET /healthz has none).
    assert figures.cases >= operations * min(EXAMPLES, 15), log[-4000:]
    # A failed Hypothesis health check is the generator giving up on an operation (with
    # thousands of examples, POST /v1/export's oneOf trips "large base example" even when
    # suppressed); it is printed in the figures, any other error fails the test.
    assert all("Health Check" in error for error in figures.errors), log[-4000:]
    assert sum(figures.failures_by_check.values()) == 0, f"{figures.line()}\n{log[-8000:]}"
    assert figures.exit_code == 0 or figures.errors, log[-4000:]
    assert set(CHECKS) >= set(figures.failures_by_check)
