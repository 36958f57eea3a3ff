"""Input the database cannot hold is refused at the edge with problem+json, nothing written (I14).

Every test compares a snapshot (row counts of every table, every blob key) before and
after the refused requests: a refusal changes nothing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from genkeep.config import Settings
from tests.support.edge import EdgeApi, edge_api, snapshot

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "genkeep" / "extract" / "samples"
ONTOLOGY = (SAMPLES / "ontology.ttl").read_text()


@pytest.fixture
async def api(settings: Settings, tmp_path: Path) -> AsyncIterator[EdgeApi]:
    async with edge_api(settings, tmp_path, max_body_bytes=256 * 1024) as opened:
        yield opened


async def _job(api: EdgeApi) -> dict[str, Any]:
    body = {"title": "Edge", "sections": [{"title": "A", "content": "x"}]}
    response = await api.client.post("/v1/jobs", json=body, headers=api.alice)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _raw(value: Any) -> bytes:
    """JSON as a client may send it: lone surrogates escaped, as json.dumps does."""
    return json.dumps(value).encode("ascii")


def _refused(response: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = dict(response.json())
    if field is not None:
        assert field in problem["detail"], problem
    return problem


async def test_nul_and_lone_surrogates_are_refused_on_every_family_of_routes(
    api: EdgeApi,
) -> None:
    job = await _job(api)
    generated = await api.client.post("/v1/generate", json={"prompt": "p"}, headers=api.alice)
    result_id = generated.json()["result_id"]
    jid = job["id"]
    tasks = {**api.alice, "Idempotency-Key": "k1", "content-type": "application/json"}
    json_headers = {**api.alice, "content-type": "application/json"}
    before = await snapshot(api.services)
    bodies: list[tuple[str, str, dict[str, Any], dict[str, str], str]] = []
    for bad in ("a\x00b", "a\ud800b"):
        bodies += [
            ("POST", "/v1/generate", {"prompt": bad}, json_headers, "body.prompt"),
            ("POST", "/v1/jobs", {"title": bad}, json_headers, "body.title"),
            (
                "POST",
                "/v1/jobs",
                {"sections": [{"title": "t", "content": bad}]},
                json_headers,
                "body.sections.0.content",
            ),
            ("PATCH", f"/v1/jobs/{jid}", {"current_schema": {"k": bad}}, json_headers, "k"),
            ("PATCH", f"/v1/jobs/{jid}", {"current_schema": {bad: 1}}, json_headers, "body"),
            ("POST", f"/v1/results/{result_id}/edits", {"content": bad}, json_headers, "content"),
            (
                "POST",
                f"/v1/jobs/{jid}/tasks",
                {"kind": "generate", "payload": {"prompt": bad}},
                tasks,
                "body.payload.prompt",
            ),
            (
                "POST",
                "/v1/runs",
                {"text": bad, "ontology": ONTOLOGY},
                json_headers,
                "body.text",
            ),
            ("POST", "/v1/export", {"content": bad, "format": "md"}, json_headers, "content"),
        ]
    for method, url, body, headers, field in bodies:
        response = await api.client.request(method, url, content=_raw(body), headers=headers)
        problem = _refused(response, 422, field)
        assert problem["code"] == "invalid-text"
    for url in (
        "/v1/jobs/a%00",
        f"/v1/jobs/{jid}/artifacts?kind=%00",
        "/v1/prompts/%00",
        "/v1/tasks/x%00/events",
        "/v1/runs/%00",
    ):
        _refused(await api.client.get(url, headers=api.alice), 422)
    upload = await api.client.put(
        f"/v1/jobs/{jid}/file?filename=a%00.txt", content=b"data", headers=api.alice
    )
    _refused(upload, 422, "query.filename")
    assert await snapshot(api.services) == before


async def test_integers_and_durations_the_database_cannot_hold_are_refused(
    api: EdgeApi,
) -> None:
    job = await _job(api)
    jid = job["id"]
    before = await snapshot(api.services)
    stale = await api.client.patch(
        f"/v1/jobs/{jid}", json={"title": "n"}, headers={**api.alice, "If-Match": '"2147483648"'}
    )
    _refused(stale, 412)
    for body in ({"version": 2147483648}, {"version": True}, {"version": "1"}, {"version": 1.5}):
        refused = await api.client.patch(f"/v1/jobs/{jid}", json=body, headers=api.alice)
        # The client's field, once: not pydantic's union members (version.none, ...).
        assert [e["loc"] for e in _refused(refused, 422)["errors"]] == [["body", "version"]]
    too_big = await api.client.patch(f"/v1/jobs/{jid}", json={"version": 2**31}, headers=api.alice)
    assert _refused(too_big, 422)["detail"] == (
        "body.version: Input should be less than or equal to 2147483647"
    )
    _refused(
        await api.client.get(f"/v1/jobs/{jid}/events?after=9223372036854775808", headers=api.alice),
        422,
        "after",
    )
    for field in ("chunk_size", "batch_size", "overlap"):
        run = {"text": "t", "ontology": ONTOLOGY, field: 2**31}
        _refused(await api.client.post("/v1/runs", json=run, headers=api.alice), 422, field)
    for max_age in (100_000_000_000_000, False, -1):
        generate = {"prompt": "p", "cache": {"max_age": max_age}}
        response = await api.client.post("/v1/generate", json=generate, headers=api.alice)
        _refused(response, 422, "max_age")
    assert await snapshot(api.services) == before
    # A max-age header beyond any date is taken as 2^31 s (RFC 9111), not a 500.
    huge = await api.client.post(
        "/v1/generate",
        json={"prompt": "p"},
        headers={**api.alice, "Cache-Control": "max-age=100000000000000"},
    )
    assert huge.status_code == 200, huge.text
    # JSON Schema's integer includes 1.0; strict bodies still refuse true and "1".
    accepted = await api.client.patch(f"/v1/jobs/{jid}", json={"version": 1.0}, headers=api.alice)
    assert accepted.status_code == 200, accepted.text


async def test_deep_json_non_numbers_and_malformed_cursors_are_refused(api: EdgeApi) -> None:
    job = await _job(api)
    before = await snapshot(api.services)
    for depth in (70, 600, 900, 5000):
        deep: Any = "x"
        for _ in range(depth):
            deep = {"a": deep}
        response = await api.client.post(
            "/v1/jobs",
            content=json.dumps({"current_schema": deep}, check_circular=False).encode()
            if depth < 900
            else b'{"current_schema": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}",
            headers={**api.alice, "content-type": "application/json"},
        )
        _refused(response, 400, "nested deeper")
    for number in (b"NaN", b"Infinity", b"-Infinity", b"1e400"):
        response = await api.client.post(
            "/v1/jobs",
            content=b'{"current_schema": {"n": ' + number + b"}}",
            headers={**api.alice, "content-type": "application/json"},
        )
        _refused(response, 422)
    for created in ("2026-01-01T00:00:00", "0001-01-01T00:00:00+14:00", "nonsense"):
        cursor = base64.urlsafe_b64encode(f"{created}|{job['id']}".encode()).decode()
        _refused(await api.client.get(f"/v1/jobs?cursor={cursor}", headers=api.alice), 422)
    _refused(await api.client.get("/v1/jobs?cursor=%%%", headers=api.alice), 422)
    long_type = "application/" + "x" * 200
    upload = await api.client.put(
        f"/v1/jobs/{job['id']}/file?filename=a.txt",
        content=b"data",
        headers={**api.alice, "content-type": long_type},
    )
    _refused(upload, 422, "Content-Type")
    assert await snapshot(api.services) == before


async def test_a_page_cursor_still_pages(api: EdgeApi) -> None:
    for _ in range(3):
        await _job(api)
    first = (await api.client.get("/v1/jobs?limit=2", headers=api.alice)).json()
    second = await api.client.get(
        f"/v1/jobs?limit=2&cursor={first['next_cursor']}", headers=api.alice
    )
    assert second.status_code == 200
    assert len(first["items"]) + len(second.json()["items"]) == 3


async def test_oversized_bodies_answer_413_before_anything_is_written(api: EdgeApi) -> None:
    job = await _job(api)
    before = await snapshot(api.services)
    big = {"title": "t", "sections": [{"title": "s", "content": "x" * 300_000}]}
    response = await api.client.post("/v1/jobs", json=big, headers=api.alice)
    assert _refused(response, 413)["code"] == "payload-too-large"

    async def chunked() -> AsyncIterator[bytes]:
        yield b'{"title": "t", "sections": [{"title": "s", "content": "'
        for _ in range(40):
            yield b"x" * 10_000
        yield b'"}]}'

    response = await api.client.post(
        "/v1/jobs", content=chunked(), headers={**api.alice, "content-type": "application/json"}
    )
    _refused(response, 413)
    for content_type in ("text/plain", "application/octet-stream"):
        response = await api.client.post(
            "/v1/jobs", content=b"x" * 300_000, headers={**api.alice, "content-type": content_type}
        )
        _refused(response, 413)
    schema = {"k": "y" * 200_000}
    roomy_settings = api.services.settings.model_copy(update={"max_body_bytes": 32 * 2**20})
    async with edge_api(roomy_settings, Path(str(api.services.settings.blob_dir)).parent) as roomy:
        # Below the body cap, a current_schema above its own limit (1 MiB) is 413 too.
        roomy_before = await snapshot(roomy.services)
        response = await roomy.client.post(
            "/v1/jobs",
            json={"current_schema": {str(i): schema for i in range(6)}},
            headers=roomy.alice,
        )
        _refused(response, 413, "current_schema")
        response = await roomy.client.post(
            "/v1/export", json={"content": "x" * 200_001, "format": "pdf"}, headers=roomy.alice
        )
        _refused(response, 422, "content")
        assert await snapshot(roomy.services) == roomy_before
    assert await snapshot(api.services) == before
    upload = await api.client.put(
        f"/v1/jobs/{job['id']}/file?filename=big.bin", content=b"z" * 300_000, headers=api.alice
    )
    assert upload.status_code == 200, "uploads have their own, larger cap"


async def test_an_upload_above_its_cap_answers_413_and_leaves_no_blob(
    settings: Settings, tmp_path: Path
) -> None:
    async with edge_api(settings, tmp_path, max_upload_bytes=100_000) as api:
        job = await _job(api)
        before = await snapshot(api.services)

        async def stream() -> AsyncIterator[bytes]:
            for _ in range(30):
                yield b"z" * 10_000

        for content in (b"z" * 100_001, stream()):
            response = await api.client.put(
                f"/v1/jobs/{job['id']}/file?filename=big.bin", content=content, headers=api.alice
            )
            _refused(response, 413)
        assert await snapshot(api.services) == before


async def test_errors_echo_client_input_only_truncated(api: EdgeApi) -> None:
    before = await snapshot(api.services)
    profile = "p" * 60_000
    response = await api.client.post(
        "/v1/generate", json={"prompt": "x", "profile": profile}, headers=api.alice
    )
    problem = _refused(response, 422)
    assert len(response.content) < 3000, "the 60 KB profile name is not echoed whole"
    assert "more)" in problem["detail"]
    assert await snapshot(api.services) == before
