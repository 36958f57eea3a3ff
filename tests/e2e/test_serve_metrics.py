"""Several ``genkeep serve`` processes on one data folder keep each other's metrics."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_generate_concurrency import metric
from tests.support.server import Server

pytestmark = pytest.mark.e2e


def generate(server: Server, prompt: str) -> None:
    answer = httpx.post(server.url + "/v1/generate", json={"prompt": prompt}, timeout=30)
    assert answer.status_code == 200, answer.text


def hits(server: Server) -> float:
    return metric(server, "genkeep_cache_hits_total")


def test_two_servers_on_one_data_folder_keep_their_counters(
    servers: Callable[..., Server], tmp_path: Path
) -> None:
    shared = str(tmp_path / "shared")
    env = {"GENKEEP_DATA_DIR": shared, "GENKEEP_SERVE_WORKER": "false"}
    env["GENKEEP_PROFILES"] = json.dumps({"default": {}})
    first = servers(**env)
    generate(first, "counted by the first server")
    generate(first, "counted by the first server")
    assert hits(first) == 1
    # The second server starts on the same folder while the first has counted.
    second = servers(**env)
    for _ in range(3):
        generate(second, "counted by the first server")
    assert hits(first) == 1
    assert hits(second) == 3
    generate(first, "counted by the first server")
    assert hits(first) == 2

    # A server that exited leaves a folder the next one on this host removes.
    folders = {p.name for p in (Path(shared) / "metrics").iterdir()}
    assert len(folders) == 2
    second.stop()
    third = servers(**env)
    host = socket.gethostname()
    kept = {p.name for p in (Path(shared) / "metrics").iterdir()}
    assert len(kept) == 2 and len(kept & folders) == 1
    assert all(name.startswith(f"{host}-") for name in kept)
    assert hits(third) == 0 and hits(first) == 2
