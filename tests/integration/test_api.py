"""The HTTP API in process (ASGI): routes, problem+json errors, canonical exports."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from io import BytesIO

import docx
import httpx
import pypdf
import pytest
from sqlalchemy import func, select

from genkeep.config import Settings
from genkeep.db.database import Database
from genkeep.db.models import Prompt, Result
from tests.support.in_process import in_process


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process(settings) as app:
        yield app.client


async def rows(database: Database) -> tuple[int, int]:
    async with database.reading() as session:
        prompts = (await session.execute(select(func.count()).select_from(Prompt))).scalar_one()
        results = (await session.execute(select(func.count()).select_from(Result))).scalar_one()
    return int(prompts), int(results)


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["code"] == code
    assert body["title"] and body["detail"] and body["type"].endswith(code)


async def test_generate_then_read_prompt_and_result(client: httpx.AsyncClient) -> None:
    first = (await client.post("/v1/generate", json={"prompt": "Hello durable world"})).json()
    second = (await client.post("/v1/generate", json={"prompt": "hello   DURABLE world"})).json()
    assert first["persisted"] and not first["cached"]
    assert second["cached"] and second["result_id"] == first["result_id"]
    prompt = (await client.get(f"/v1/prompts/{first['prompt_id']}")).json()
    assert prompt["normalized"] == "hello durable world"
    assert [r["id"] for r in prompt["results"]] == [first["result_id"]]
    result = (await client.get(f"/v1/results/{first['result_id']}")).json()
    assert result["content"] == first["content"] and result["source"] == "generated"
    assert result["content_sha256"] == hashlib.sha256(first["content"].encode()).hexdigest()


async def test_cache_control_header_and_body(client: httpx.AsyncClient) -> None:
    first = (await client.post("/v1/generate", json={"prompt": "versions"})).json()
    fresh = await client.post(
        "/v1/generate", json={"prompt": "versions"}, headers={"Cache-Control": "no-cache"}
    )
    assert fresh.json()["version"] == 2 and not fresh.json()["cached"]
    body = await client.post(
        "/v1/generate", json={"prompt": "versions", "cache": {"no_cache": True}}
    )
    assert body.json()["version"] == 3
    unstored = await client.post(
        "/v1/generate", json={"prompt": "never kept", "cache": {"no_store": True}}
    )
    assert unstored.json()["persisted"] is False and unstored.json()["prompt_id"] is None
    assert first["version"] == 1


async def test_edit_and_regenerate(client: httpx.AsyncClient) -> None:
    first = (await client.post("/v1/generate", json={"prompt": "edit me"})).json()
    edit = await client.post(
        f"/v1/results/{first['result_id']}/edits", json={"content": "# Edited\n\nBy hand.\n"}
    )
    assert edit.status_code == 201
    assert edit.json()["source"] == "edited" and edit.json()["version"] == 2
    regenerated = await client.post(f"/v1/prompts/{first['prompt_id']}/regenerate")
    assert regenerated.json()["version"] == 3 and regenerated.json()["source"] == "regenerated"


async def test_export_reads_persisted_content(client: httpx.AsyncClient) -> None:
    first = (await client.post("/v1/generate", json={"prompt": "Export this report"})).json()
    edited = (
        await client.post(
            f"/v1/results/{first['result_id']}/edits",
            json={"content": "# Final report\n\nThe edited text — Ωμέγα.\n"},
        )
    ).json()
    md = await client.post("/v1/export", json={"prompt_id": first["prompt_id"], "format": "md"})
    assert md.content.decode() == edited["content"]
    assert md.headers["x-genkeep-result-id"] == edited["id"]
    assert md.headers["x-genkeep-content-sha256"] == hashlib.sha256(md.content).hexdigest()
    pdf = await client.post("/v1/export", json={"result_id": first["result_id"], "format": "pdf"})
    assert pdf.headers["content-type"] == "application/pdf"
    text = " ".join(page.extract_text() for page in pypdf.PdfReader(BytesIO(pdf.content)).pages)
    for paragraph in first["content"].split("\n\n")[1:]:
        assert " ".join(paragraph.split()[:6]) in " ".join(text.split())
    docx_file = await client.post("/v1/export", json={"result_id": edited["id"], "format": "docx"})
    paragraphs = [p.text for p in docx.Document(BytesIO(docx_file.content)).paragraphs]
    assert paragraphs[:2] == ["Final report", "The edited text — Ωμέγα."]
    raw = await client.post("/v1/export", json={"content": "# Raw\n\nclient text", "format": "md"})
    assert raw.headers["x-genkeep-persisted"] == "false"
    assert "x-genkeep-result-id" not in raw.headers


async def test_preview_is_html_of_stored_content(client: httpx.AsyncClient) -> None:
    first = (await client.post("/v1/generate", json={"prompt": "<script>alert(1)</script>"})).json()
    page = await client.get(f"/v1/results/{first['result_id']}/preview")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script>alert" not in page.text and "&lt;script&gt;" in page.text
    assert first["content_sha256"] in page.text


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code"),
    [
        ({"json": {"prompt": ""}}, 422, "validation"),
        ({"json": {"prompt": "   \n"}}, 422, "prompt-empty"),
        ({"json": {"prompt": "x" * (64 * 1024 + 1)}}, 413, "prompt-too-large"),
        ({"json": {"prompt": "ok", "profile": "gpt-nope"}}, 422, "unknown-profile"),
        # The document offers the known names or null; "" is neither (make fuzz found it).
        ({"json": {"prompt": "ok", "profile": ""}}, 422, "unknown-profile"),
        ({"json": {"prompt": "ok", "surprise": 1}}, 422, "validation"),
        ({"json": {"prompt": 42}}, 422, "validation"),
        ({"json": {}}, 422, "validation"),
        ({"json": {"prompt": "ok", "cache": {"max_age": -5}}}, 422, "validation"),
        (
            {
                "content": b'{"prompt": "unterminated',
                "headers": {"content-type": "application/json"},
            },
            400,
            "invalid-json",
        ),
    ],
)
async def test_bad_generate_input_is_refused_and_writes_nothing(
    client: httpx.AsyncClient,
    database: Database,
    request_kwargs: dict[str, object],
    status: int,
    code: str,
) -> None:
    response = await client.post("/v1/generate", **request_kwargs)  # type: ignore[arg-type]
    assert_problem(response, status, code)
    assert await rows(database) == (0, 0)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/prompts/no-such-id", None),
        ("GET", "/v1/results/no-such-id", None),
        ("GET", "/v1/results/no-such-id/preview", None),
        ("POST", "/v1/prompts/no-such-id/regenerate", None),
        ("POST", "/v1/results/no-such-id/edits", {"content": "x"}),
        ("POST", "/v1/export", {"result_id": "no-such-id"}),
        ("POST", "/v1/export", {"prompt_id": "no-such-id"}),
        # An unknown /v1 path answers as OpenAI does (test_openai_errors); others problem+json.
        ("GET", "/nowhere", None),
    ],
)
async def test_unknown_ids_answer_404_problem(
    client: httpx.AsyncClient, database: Database, method: str, path: str, body: object
) -> None:
    response = await client.request(method, path, json=body)
    assert_problem(response, 404, "not-found")
    assert await rows(database) == (0, 0)


@pytest.mark.parametrize(
    "body",
    [
        {"format": "pdf"},
        {"result_id": "a", "content": "b"},
        {"content": "x", "format": "exe"},
        {"content": ""},
    ],
)
async def test_bad_export_requests(client: httpx.AsyncClient, body: object) -> None:
    assert_problem(await client.post("/v1/export", json=body), 422, "validation")


async def test_health_readiness_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    await client.post("/v1/generate", json={"prompt": "count me"})
    metrics = (await client.get("/metrics")).text
    assert "genkeep_generator_calls_total" in metrics
    assert "genkeep_generate_seconds_bucket" in metrics


async def test_openapi_documents_cache_control(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    generate = schema["paths"]["/v1/generate"]["post"]
    assert any(p["name"] == "cache-control" for p in generate["parameters"])
    assert "max_age" in schema["components"]["schemas"]["CacheDirectives"]["properties"]
