"""A cache hit is never stale: process A answers with what process B wrote, on the next request.

Cache hits read on the driver outside SQLAlchemy (db/reader.py): a connection kept on the
event loop, a pool of autocommit connections. A read snapshot left open, or any cache in
a process, would answer with the version it saw before; two real servers on one database
show that none does.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.support.server import Server

pytestmark = pytest.mark.e2e

PROMPT = "What does the reader of process A know about writes of process B?"


def generate(server: Server, **headers: str) -> dict[str, object]:
    answer = httpx.post(
        server.url + "/v1/generate", json={"prompt": PROMPT}, headers=headers, timeout=30
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


def edit(server: Server, result_id: object, content: str) -> dict[str, object]:
    answer = httpx.post(
        f"{server.url}/v1/results/{result_id}/edits", json={"content": content}, timeout=30
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, object] = answer.json()
    return body


def test_a_hit_in_one_process_reflects_a_version_written_by_another(
    servers: Callable[..., Server],
) -> None:
    a, b = servers(), servers()
    first = generate(a)
    assert (first["version"], first["cached"]) == (1, False)
    # Warm A's hit path: its reader connection is open and has answered this prompt.
    for _ in range(3):
        assert generate(a)["result_id"] == first["result_id"]

    latest = first
    for round_number in range(1, 4):
        edited = edit(b, latest["result_id"], f"edited by B, round {round_number}")
        seen = generate(a)
        assert (seen["result_id"], seen["version"], seen["content"], seen["cached"]) == (
            edited["id"],
            edited["version"],
            f"edited by B, round {round_number}",
            True,
        )
        latest = seen

    # A new generation in B (no-cache) is what A's very next hit answers too.
    regenerated = generate(b, **{"Cache-Control": "no-cache"})
    assert regenerated["source"] == "regenerated"
    seen = generate(a)
    assert (seen["result_id"], seen["version"], seen["cached"]) == (
        regenerated["result_id"],
        regenerated["version"],
        True,
    )
