"""Jobs, tasks and artifacts over HTTP (in process): auth, gates, concurrency, isolation."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from genkeep.config import Settings
from genkeep.extract.manager import RunManager
from genkeep.services import Services
from genkeep.worker.runner import Worker
from tests.support.in_process import in_process


@dataclass
class Api:
    client: httpx.AsyncClient
    services: Services
    alice: dict[str, str]
    bob: dict[str, str]
    runs: RunManager


@pytest.fixture
async def api(settings: Settings, tmp_path: Path) -> AsyncIterator[Api]:
    configured = settings.model_copy(
        update={
            "auth_required": True,
            "task_poll_s": 0.05,
            "blob_dir": tmp_path / "blobs",
            "public_url": "http://genkeep",
        }
    )
    async with in_process(configured) as app:
        _, alice = await app.services.keys.create("alice", "test")
        _, bob = await app.services.keys.create("bob", "test")
        yield Api(
            app.client,
            app.services,
            {"Authorization": f"Bearer {alice}"},
            {"Authorization": f"Bearer {bob}"},
            app.runs,
        )


async def run_until_done(api: Api, task_id: str) -> dict[str, object]:
    worker = Worker(api.services)
    running = asyncio.create_task(worker.run())
    try:
        for _ in range(500):
            task = (await api.client.get(f"/v1/tasks/{task_id}", headers=api.alice)).json()
            if task["status"] in ("completed", "failed", "cancelled"):
                return dict(task)
            await asyncio.sleep(0.02)
        raise AssertionError("task did not finish")
    finally:
        worker.stop()
        await running


SAMPLES = Path(__file__).resolve().parents[2] / "src" / "genkeep" / "extract" / "samples"
SAMPLE_TEXT = (SAMPLES / "text.md").read_text()
SAMPLE_ONTOLOGY = (SAMPLES / "ontology.ttl").read_text()
SECTIONS = [
    {"title": "Summary", "content": "Revenue grew **12%**."},
    {"title": "Risks", "content": "- supply\n- hiring"},
]


async def test_auth(api: Api) -> None:
    assert (await api.client.get("/v1/jobs")).status_code == 401
    wrong = await api.client.get("/v1/jobs", headers={"Authorization": "Bearer gk_nope_nope"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "unauthorized"
    assert (
        await api.client.get("/v1/jobs", headers={"Authorization": "Basic x"})
    ).status_code == 401
    assert (await api.client.get("/v1/jobs", headers=api.alice)).status_code == 200
    key_id = api.alice["Authorization"].split("_")[1]
    assert await api.services.keys.revoke(key_id)
    assert (await api.client.get("/v1/jobs", headers=api.alice)).status_code == 401


async def test_job_lifecycle_with_gates_and_optimistic_concurrency(api: Api) -> None:
    created = await api.client.post(
        "/v1/jobs", json={"title": "Q3", "sections": SECTIONS}, headers=api.alice
    )
    assert created.status_code == 201 and created.headers["etag"] == '"1"'
    job = created.json()
    export = {"kind": "export", "payload": {"formats": ["md"]}}
    gated = await api.client.post(
        f"/v1/jobs/{job['id']}/tasks", json=export, headers={**api.alice, "Idempotency-Key": "g1"}
    )
    assert gated.status_code == 409 and gated.json()["code"] == "gate-closed"
    confirm = await api.client.patch(
        f"/v1/jobs/{job['id']}",
        json={"sections_confirmed": True},
        headers={**api.alice, "If-Match": '"1"'},
    )
    assert confirm.status_code == 200 and confirm.json()["version"] == 2
    stale = await api.client.patch(
        f"/v1/jobs/{job['id']}", json={"title": "late"}, headers={**api.alice, "If-Match": '"1"'}
    )
    assert stale.status_code == 412 and stale.json()["code"] == "precondition-failed"
    assert (await api.client.get(f"/v1/jobs/{job['id']}", headers=api.alice)).json()[
        "title"
    ] == "Q3"
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    first = await api.client.post(
        f"/v1/jobs/{job['id']}/tasks",
        json=export,
        headers={**api.alice, "Idempotency-Key": "x1", "traceparent": traceparent},
    )
    again = await api.client.post(
        f"/v1/jobs/{job['id']}/tasks", json=export, headers={**api.alice, "Idempotency-Key": "x1"}
    )
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    different = await api.client.post(
        f"/v1/jobs/{job['id']}/tasks",
        json={"kind": "export", "payload": {"formats": ["pdf"]}},
        headers={**api.alice, "Idempotency-Key": "x1"},
    )
    assert different.status_code == 422 and different.json()["code"] == "idempotency-mismatch"
    task = await run_until_done(api, first.json()["id"])
    assert task["status"] == "completed" and task["progress"] == 1.0
    [artifact] = (await api.client.get(f"/v1/jobs/{job['id']}/artifacts", headers=api.alice)).json()
    assert artifact["kind"] == "md" and artifact["version"] == 1
    download = await api.client.get(f"/v1/artifacts/{artifact['id']}/download", headers=api.alice)
    assert download.status_code == 302
    location = download.headers["location"]
    assert re.search(r"expires=\d+", location) and "signature=" in location
    file = await api.client.get(location)
    assert file.status_code == 200 and "Revenue grew **12%**." in file.text
    tampered = await api.client.get(location.replace("signature=", "signature=0"))
    assert tampered.status_code == 403
    events = (await api.client.get(f"/v1/jobs/{job['id']}/events", headers=api.alice)).json()
    kinds = [e["event_type"] for e in events]
    assert kinds[:3] == ["job.created", "job.updated", "task.queued"]
    # The update says what it changed, not only which fields were sent.
    assert events[1]["payload"]["changes"] == {"sections_confirmed": {"from": False, "to": True}}
    assert "task.completed" in kinds
    queued = next(e for e in events if e["event_type"] == "task.queued")
    assert queued["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert queued["actor"].startswith("alice (key:")  # the owner, and the key it used


async def test_a_stored_file_is_delivered_as_a_redirect_its_url_or_its_content(
    api: Api,
) -> None:
    job = (
        await api.client.post(
            "/v1/jobs",
            json={"title": "Café", "sections_confirmed": True, "sections": SECTIONS},
            headers=api.alice,
        )
    ).json()
    task = await api.client.post(
        f"/v1/jobs/{job['id']}/tasks",
        json={"kind": "export", "payload": {"formats": ["md"]}},
        headers={**api.alice, "Idempotency-Key": "deliver"},
    )
    await run_until_done(api, task.json()["id"])
    [artifact] = (await api.client.get(f"/v1/jobs/{job['id']}/artifacts", headers=api.alice)).json()
    path = f"/v1/artifacts/{artifact['id']}/download"
    row = await api.services.artifacts.get("alice", artifact["id"])
    assert row is not None
    stored = await api.services.blobs.get(row.blob_key)

    redirect = await api.client.get(path, headers=api.alice)
    assert redirect.status_code == 302
    assert (await api.client.get(redirect.headers["location"])).content == stored
    signed = await api.client.get(f"{path}?deliver=url", headers=api.alice)
    assert signed.status_code == 200, signed.text
    assert signed.json()["expires_in_s"] == api.services.settings.signed_url_ttl_s
    assert (await api.client.get(signed.json()["url"])).content == stored
    content = await api.client.get(f"{path}?deliver=content", headers=api.alice)
    assert content.status_code == 200 and content.content == stored
    assert content.headers["content-type"].startswith("text/markdown")
    assert "filename*=UTF-8''caf%C3%A9.md" in content.headers["content-disposition"]
    assert content.headers["x-content-type-options"] == "nosniff"

    for how in ("url", "content"):  # another owner's file is not there, whatever is asked
        refused = await api.client.get(f"{path}?deliver={how}", headers=api.bob)
        assert refused.status_code == 404, refused.text
    # A file gone from the store answers a whole 404, not a 200 whose stream breaks.
    await api.services.blobs.delete(row.blob_key)
    gone = await api.client.get(f"{path}?deliver=content", headers=api.alice)
    assert gone.status_code == 404, gone.text
    assert gone.headers["content-type"] == "application/problem+json"


async def test_file_upload_and_pagination(api: Api) -> None:
    ids = []
    for i in range(5):
        ids.append(
            (await api.client.post("/v1/jobs", json={"title": f"J{i}"}, headers=api.alice)).json()[
                "id"
            ]
        )
    page1 = (await api.client.get("/v1/jobs?limit=2", headers=api.alice)).json()
    page2 = (
        await api.client.get(f"/v1/jobs?limit=2&cursor={page1['next_cursor']}", headers=api.alice)
    ).json()
    page3 = (
        await api.client.get(f"/v1/jobs?limit=2&cursor={page2['next_cursor']}", headers=api.alice)
    ).json()
    listed = [j["id"] for p in (page1, page2, page3) for j in p["items"]]
    assert listed == list(reversed(ids)) and page3["next_cursor"] is None
    assert (await api.client.get("/v1/jobs?cursor=%%%", headers=api.alice)).status_code == 422
    upload = await api.client.put(
        f"/v1/jobs/{ids[0]}/file?filename=../../etc/passwd",
        content=b"%PDF-1.7 fake",
        headers={**api.alice, "content-type": "application/pdf"},
    )
    assert upload.status_code == 200
    file = upload.json()["file"]
    assert (
        file["name"] == "passwd" and file["size"] == 13 and file["media_type"] == "application/pdf"
    )
    empty = await api.client.put(
        f"/v1/jobs/{ids[0]}/file?filename=a.txt", content=b"", headers=api.alice
    )
    assert empty.status_code == 422


async def test_an_upload_over_the_limit_is_413_payload_too_large(api: Api) -> None:
    api.services.settings = api.services.settings.model_copy(update={"max_upload_bytes": 1000})
    job = (await api.client.post("/v1/jobs", json={}, headers=api.alice)).json()
    url = f"/v1/jobs/{job['id']}/file?filename=big.bin"
    over = await api.client.put(url, content=b"x" * 1001, headers=api.alice)
    assert over.status_code == 413 and over.json()["code"] == "payload-too-large", over.text
    assert (await api.client.get(f"/v1/jobs/{job['id']}", headers=api.alice)).json()["file"] is None
    fits = await api.client.put(url, content=b"x" * 1000, headers=api.alice)
    assert fits.status_code == 200 and fits.json()["file"]["size"] == 1000


async def test_sse_streams_progress_until_done(api: Api) -> None:
    job = (await api.client.post("/v1/jobs", json={}, headers=api.alice)).json()
    prompt = (
        await api.client.post("/v1/generate", json={"prompt": "sse"}, headers=api.alice)
    ).json()
    task = (
        await api.client.post(
            f"/v1/jobs/{job['id']}/tasks",
            json={
                "kind": "export",
                "payload": {"formats": ["md", "html"], "result_id": prompt["result_id"]},
            },
            headers={**api.alice, "Idempotency-Key": "sse"},
        )
    ).json()
    worker = Worker(api.services)
    running = asyncio.create_task(worker.run())
    statuses = []
    try:
        async with api.client.stream(
            "GET", f"/v1/tasks/{task['id']}/events?interval=0.05", headers=api.alice
        ) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            async for line in stream.aiter_lines():
                if line.startswith("data: "):
                    statuses.append(line)
    finally:
        worker.stop()
        await running
    assert '"status":"completed"' in statuses[-1]
    [bundle] = (
        await api.client.get(f"/v1/jobs/{job['id']}/artifacts?kind=zip", headers=api.alice)
    ).json()
    assert bundle["is_zip"] and bundle["source_result_id"] == prompt["result_id"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"kind": "nope"}, "bad-input"),
        ({"kind": "export", "payload": {"formats": []}}, "bad-input"),
        ({"kind": "export", "payload": {"formats": ["exe"]}}, "bad-input"),
        ({"kind": "generate", "payload": {}}, "bad-input"),
        ({"kind": "export", "payload": {"formats": ["md"], "extra": 1}}, "bad-input"),
    ],
)
async def test_bad_task_input(api: Api, body: dict[str, object], code: str) -> None:
    job = (await api.client.post("/v1/jobs", json={}, headers=api.alice)).json()
    response = await api.client.post(
        f"/v1/jobs/{job['id']}/tasks", json=body, headers={**api.alice, "Idempotency-Key": "bad"}
    )
    assert response.status_code == 422 and response.json()["code"] == code
    missing_key = await api.client.post(f"/v1/jobs/{job['id']}/tasks", json=body, headers=api.alice)
    assert missing_key.status_code == 422
    assert (await api.client.get(f"/v1/jobs/{job['id']}/events", headers=api.alice)).json()[-1][
        "event_type"
    ] == "job.created"


# -- the job gates (docs/jobs.md, "Jobs"): sections_confirmed and schema_dirty ---------------

NEW_SECTIONS = [{"title": "Outlook", "content": "Steady."}]
SECTIONS_EXPORT = {"kind": "export", "payload": {"formats": ["md"]}}


async def _patch(api: Api, job_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    response = await api.client.patch(f"/v1/jobs/{job_id}", json=changes, headers=api.alice)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _export(api: Api, job_id: str, key: str, body: dict[str, Any]) -> httpx.Response:
    return await api.client.post(
        f"/v1/jobs/{job_id}/tasks", json=body, headers={**api.alice, "Idempotency-Key": key}
    )


async def _event_types(api: Api, job_id: str) -> list[str]:
    events = (await api.client.get(f"/v1/jobs/{job_id}/events", headers=api.alice)).json()
    return [e["event_type"] for e in events]


async def _open_job(api: Api) -> dict[str, Any]:
    """A job whose gates are open: sections confirmed, schema clean."""
    created = await api.client.post(
        "/v1/jobs",
        json={"title": "Gated", "sections": SECTIONS, "sections_confirmed": True},
        headers=api.alice,
    )
    assert created.status_code == 201, created.text
    job = dict(created.json())
    assert job["sections_confirmed"] is True and job["schema_dirty"] is False
    return job


@pytest.mark.parametrize(
    ("closing", "gate", "closed_value", "reopening"),
    [
        pytest.param(
            {"sections": NEW_SECTIONS},
            "sections_confirmed",
            False,
            {"sections_confirmed": True},
            id="changing-sections-unconfirms",
        ),
        pytest.param(
            {"current_schema": {"type": "object", "required": ["Outlook"]}},
            "schema_dirty",
            True,
            {"schema_dirty": False},
            id="changing-schema-marks-dirty",
        ),
    ],
)
async def test_gate_closes_on_change_and_refuses_section_export(
    api: Api,
    closing: dict[str, Any],
    gate: str,
    closed_value: bool,
    reopening: dict[str, Any],
) -> None:
    job = await _open_job(api)
    other_gate = "schema_dirty" if gate == "sections_confirmed" else "sections_confirmed"
    assert (await _export(api, job["id"], "open", SECTIONS_EXPORT)).status_code == 201
    # Changing anything else leaves the gates alone.
    retitled = await _patch(api, job["id"], {"title": "Renamed"})
    assert retitled["sections_confirmed"] is True and retitled["schema_dirty"] is False
    closed = await _patch(api, job["id"], closing)
    assert closed[gate] is closed_value
    assert closed[other_gate] == job[other_gate]  # each gate follows its own field only
    fetched = (await api.client.get(f"/v1/jobs/{job['id']}", headers=api.alice)).json()
    assert fetched[gate] is closed_value  # stored, not just echoed
    refused = await _export(api, job["id"], "while-closed", SECTIONS_EXPORT)
    assert refused.status_code == 409 and refused.json()["code"] == "gate-closed"
    assert refused.headers["content-type"] == "application/problem+json"
    assert (await _event_types(api, job["id"])).count("task.queued") == 1
    reopened = await _patch(api, job["id"], reopening)
    assert reopened[gate] is not closed_value
    # The refusal stored nothing, so the same key now creates the task.
    accepted = await _export(api, job["id"], "while-closed", SECTIONS_EXPORT)
    assert accepted.status_code == 201, accepted.text
    assert (await _event_types(api, job["id"])).count("task.queued") == 2


async def test_a_schema_that_is_not_a_json_schema_is_refused_and_not_stored(api: Api) -> None:
    job = await _open_job(api)
    for nonsense in ({"type": "nonsense"}, {"required": "Outlook"}, {"minLength": -1}):
        refused = await api.client.patch(
            f"/v1/jobs/{job['id']}", json={"current_schema": nonsense}, headers=api.alice
        )
        assert refused.status_code == 422, refused.text
        assert "not a valid JSON Schema" in refused.text
        created = await api.client.post(
            "/v1/jobs", json={"title": "x", "current_schema": nonsense}, headers=api.alice
        )
        assert created.status_code == 422, created.text
    stored = await api.client.get(f"/v1/jobs/{job['id']}", headers=api.alice)
    assert stored.json()["current_schema"] == job["current_schema"]


async def test_clearing_schema_counts_as_a_schema_change(api: Api) -> None:
    job = await _open_job(api)
    with_schema = await _patch(api, job["id"], {"current_schema": {"v": 1}, "schema_dirty": False})
    assert with_schema["schema_dirty"] is False  # the client cleared it in the same change
    cleared = await _patch(api, job["id"], {"current_schema": None})
    assert cleared["current_schema"] is None and cleared["schema_dirty"] is True
    refused = await _export(api, job["id"], "no-schema", SECTIONS_EXPORT)
    assert refused.status_code == 409 and refused.json()["code"] == "gate-closed"


async def test_resending_the_same_sections_or_schema_is_no_change(api: Api) -> None:
    job = await _open_job(api)
    with_schema = await _patch(api, job["id"], {"current_schema": {"v": 1}, "schema_dirty": False})
    same = await _patch(
        api,
        job["id"],
        {"sections": with_schema["sections"], "current_schema": with_schema["current_schema"]},
    )
    assert same["sections_confirmed"] is True and same["schema_dirty"] is False
    assert (await _export(api, job["id"], "unchanged", SECTIONS_EXPORT)).status_code == 201
    changed = await _patch(api, job["id"], {"current_schema": {"v": 2}})
    assert changed["schema_dirty"] is True and changed["sections_confirmed"] is True


async def test_both_gates_must_be_open_to_export_sections(api: Api) -> None:
    job = await _open_job(api)
    await _patch(api, job["id"], {"sections": NEW_SECTIONS, "current_schema": {"v": 2}})
    both = await _export(api, job["id"], "both", SECTIONS_EXPORT)
    assert both.status_code == 409 and both.json()["code"] == "gate-closed"
    confirmed = await _patch(api, job["id"], {"sections_confirmed": True})
    assert confirmed["schema_dirty"] is True  # confirming sections does not clean the schema
    still = await _export(api, job["id"], "both", SECTIONS_EXPORT)
    assert still.status_code == 409 and still.json()["code"] == "gate-closed"
    await _patch(api, job["id"], {"schema_dirty": False})
    assert (await _export(api, job["id"], "both", SECTIONS_EXPORT)).status_code == 201


async def test_closed_gates_do_not_refuse_exporting_a_stored_result(api: Api) -> None:
    created = await api.client.post(
        "/v1/jobs",
        json={"title": "Closed", "sections": SECTIONS, "schema_dirty": True},
        headers=api.alice,
    )
    job = created.json()
    assert job["sections_confirmed"] is False and job["schema_dirty"] is True
    prompt = (
        await api.client.post("/v1/generate", json={"prompt": "gates"}, headers=api.alice)
    ).json()
    body = {"kind": "export", "payload": {"formats": ["md"], "result_id": prompt["result_id"]}}
    response = await _export(api, job["id"], "result", body)
    assert response.status_code == 201, response.text
    task = await run_until_done(api, response.json()["id"])
    assert task["status"] == "completed"
    sections = await _export(api, job["id"], "sections", SECTIONS_EXPORT)
    assert sections.status_code == 409 and sections.json()["code"] == "gate-closed"


@pytest.mark.parametrize(
    ("closing", "reason"),
    [
        pytest.param({"sections": NEW_SECTIONS}, "not confirmed", id="sections-changed"),
        pytest.param({"current_schema": {"v": 3}}, "schema_dirty", id="schema-changed"),
    ],
)
async def test_gate_closed_after_submission_fails_the_task_without_retrying(
    api: Api, closing: dict[str, Any], reason: str
) -> None:
    job = await _open_job(api)
    submitted = await _export(api, job["id"], "late", SECTIONS_EXPORT)
    assert submitted.status_code == 201, submitted.text
    await _patch(api, job["id"], closing)  # the gate closes while the task is queued
    task = await run_until_done(api, submitted.json()["id"])
    # A closed gate cannot improve by retrying: the task fails on its first attempt.
    assert task["status"] == "failed" and task["attempts"] == 1
    assert reason in str(task["error"])
    artifacts = await api.client.get(f"/v1/jobs/{job['id']}/artifacts", headers=api.alice)
    assert artifacts.json() == []
    kinds = await _event_types(api, job["id"])
    assert "task.retry_scheduled" not in kinds and kinds[-1] == "task.failed"


# -- owner isolation: every route of the OpenAPI schema -----------------------------------

# Routes that take no id of owner data, each with the reason it is safe.
NO_OWNER_IDS = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("POST", "/v1/generate"),  # keys are per owner: tested in test_generate_service
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs"),  # listing: checked below
    ("POST", "/v1/export"),  # ids in the body: checked below
    ("POST", "/v1/runs"),
    ("GET", "/v1/runs"),  # listing: checked below
    ("GET", "/v1/prompts"),  # listing: checked below
    ("GET", "/v1/tasks"),  # listing: checked below
    ("GET", "/v1/prompts/duplicates"),  # the owner's own: tested in test_ops_api
    ("POST", "/v1/chat/completions"),  # keys are per owner: tested in e2e/test_chat_completions
    ("GET", "/v1/models"),  # generator profiles: configuration, not owner data
    ("GET", "/v1/models/{model}"),  # a profile name, not an owner's id
    ("GET", "/v1/me"),  # the caller's own owner id
    ("GET", "/v1/me/stored-usage"),  # the owner's own: tested in test_console_api
    ("POST", "/v1/embeddings"),  # keys are per owner: tested in e2e/test_openai_dropin
    ("GET", "/v1/usage"),  # the owner's own: tested in e2e/test_cost_control
    ("GET", "/v1/usage/limits"),  # the owner's own: tested in test_console_api
    ("GET", "/v1/deletions"),  # the owner's own: tested in test_deletion
    # The admin API answers the admin token only: tested in test_deletion, test_cost_control.
    ("GET", "/v1/admin/limits/{subject}"),
    ("PUT", "/v1/admin/limits/{subject}"),
    ("DELETE", "/v1/admin/owners/{owner_id}"),
}
# Valid requests for routes with required bodies, so only ownership can make them fail.
VALID_REQUESTS: dict[tuple[str, str], dict[str, Any]] = {
    ("PATCH", "/v1/jobs/{job_id}"): {"json": {"title": "hijacked"}},
    ("POST", "/v1/jobs/{job_id}/tasks"): {
        "json": {"kind": "generate", "payload": {"prompt": "x"}},
        "headers": {"Idempotency-Key": "bob"},
    },
    ("PUT", "/v1/jobs/{job_id}/file"): {"content": b"bob's bytes"},
    ("POST", "/v1/results/{result_id}/edits"): {"json": {"content": "defaced"}},
}
VALID_QUERY = {("PUT", "/v1/jobs/{job_id}/file"): "?filename=x.txt"}
# A capability URL: the HMAC signature is the credential; without it the answer is 403.
SIGNED = {("GET", "/v1/blobs/{key}")}


async def test_every_route_hides_other_owners_data(api: Api) -> None:
    prompt = (
        await api.client.post("/v1/generate", json={"prompt": "alice's secret"}, headers=api.alice)
    ).json()
    job = (await api.client.post("/v1/jobs", json={"title": "alice"}, headers=api.alice)).json()
    task = (
        await api.client.post(
            f"/v1/jobs/{job['id']}/tasks",
            json={
                "kind": "export",
                "payload": {"formats": ["md"], "result_id": prompt["result_id"]},
            },
            headers={**api.alice, "Idempotency-Key": "iso"},
        )
    ).json()
    await run_until_done(api, task["id"])
    [artifact] = (await api.client.get(f"/v1/jobs/{job['id']}/artifacts", headers=api.alice)).json()
    run = await api.client.post(
        "/v1/runs", headers=api.alice, json={"text": SAMPLE_TEXT, "ontology": SAMPLE_ONTOLOGY}
    )
    assert run.status_code == 202, run.text
    await api.runs.await_empty()
    ids = {
        "prompt_id": prompt["prompt_id"],
        "result_id": prompt["result_id"],
        "job_id": job["id"],
        "task_id": task["id"],
        "artifact_id": artifact["id"],
        "key": artifact["id"],
        "run_id": run.json()["id"],
    }
    schema = (await api.client.get("/openapi.json")).json()
    checked = 0
    tried: list[tuple[tuple[str, str], str, dict[str, Any]]] = []
    for path, operations in schema["paths"].items():
        for method in operations:
            route = (method.upper(), path)
            if route in NO_OWNER_IDS:
                continue
            params = re.findall(r"{(\w+)}", path)
            assert params, f"{route} takes no id: add it to NO_OWNER_IDS with a reason"
            missing = [p for p in params if p not in ids]
            assert not missing, f"{route}: teach this test an id for {missing}"
            url = path.format(**ids) + VALID_QUERY.get(route, "")
            request = VALID_REQUESTS.get(route, {})
            response = await api.client.request(
                method,
                url,
                headers={**api.bob, **request.get("headers", {})},
                **{k: v for k, v in request.items() if k != "headers"},
            )
            expected = 403 if route in SIGNED else 404
            assert response.status_code == expected, (route, response.text)
            tried.append((route, url, request))
            checked += 1
    assert checked >= 15
    for body in ({"result_id": prompt["result_id"]}, {"prompt_id": prompt["prompt_id"]}):
        assert (await api.client.post("/v1/export", json=body, headers=api.bob)).status_code == 404
    assert (await api.client.get("/v1/jobs", headers=api.bob)).json()["items"] == []
    assert (await api.client.get("/v1/runs", headers=api.bob)).json() == []
    assert (await api.client.get("/v1/prompts", headers=api.bob)).json() == []
    assert (await api.client.get("/v1/tasks", headers=api.bob)).json() == []
    theirs = await api.client.get(f"/v1/tasks?job_id={job['id']}", headers=api.bob)
    assert theirs.json() == []
    assert task["id"] in [
        t["id"] for t in (await api.client.get("/v1/tasks", headers=api.alice)).json()
    ]
    mine_run = await api.client.get(f"/v1/runs/{ids['run_id']}", headers=api.alice)
    assert mine_run.json()["status"] == "completed"
    same = await api.client.post("/v1/generate", json={"prompt": "alice's secret"}, headers=api.bob)
    assert same.json()["prompt_id"] != prompt["prompt_id"] and not same.json()["cached"]
    # alice still sees everything, unchanged
    assert (await api.client.get(f"/v1/tasks/{task['id']}", headers=api.alice)).status_code == 200
    mine = (await api.client.get(f"/v1/jobs/{job['id']}", headers=api.alice)).json()
    assert mine["title"] == "alice" and mine["version"] == 1 and mine["file"] is None
    versions = await api.client.get(f"/v1/prompts/{prompt['prompt_id']}", headers=api.alice)
    assert len(versions.json()["results"]) == 1
    # Bob's 404s mean something only if the same requests find alice's data: a broken route
    # answers 404 to everyone. (Last: alice's own writes would change what is checked above;
    # her deletions after everything else, which they would make 404.)
    for route, url, request in sorted(tried, key=lambda t: t[0][0] == "DELETE"):
        response = await api.client.request(
            route[0],
            url,
            headers={**api.alice, **request.get("headers", {})},
            **{k: v for k, v in request.items() if k != "headers"},
        )
        if route in SIGNED:  # the signature is the credential, for alice as for bob
            assert response.status_code == 403, (route, response.text)
        else:
            assert response.status_code not in (404, 500), (route, response.text)
