"""Auth edges, unexpected errors, and the OpenAPI document with its locally served docs pages."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from genkeep.api.openapi import NO_NUL_KEY
from genkeep.config import Settings
from tests.support.edge import EdgeApi, edge_api, snapshot


@pytest.fixture
async def api(settings: Settings, tmp_path: Path) -> AsyncIterator[EdgeApi]:
    async with edge_api(settings, tmp_path) as opened:
        yield opened


async def test_two_authorization_headers_are_refused(api: EdgeApi) -> None:
    before = await snapshot(api.services)
    token = api.alice["Authorization"]
    response = await api.client.post(
        "/v1/jobs",
        json={"title": "two"},
        headers=[("Authorization", token), ("Authorization", api.bob["Authorization"])],
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "malformed-request"
    assert await snapshot(api.services) == before


async def test_the_scheme_and_spaces_are_normalized_once_and_audited_as_owner_and_key(
    api: EdgeApi,
) -> None:
    token = api.alice["Authorization"].removeprefix("Bearer ")
    for header in (f"bearer   {token}", f"  BEARER {token}  ", f"Bearer\t{token}"):
        response = await api.client.post(
            "/v1/jobs", json={"title": "spaced"}, headers={"Authorization": header}
        )
        assert response.status_code == 201, (header, response.text)
        events = await api.client.get(f"/v1/jobs/{response.json()['id']}/events", headers=api.alice)
        # The owner the key resolves to, and the key: the audit log names both.
        assert [e["actor"] for e in events.json()] == [f"alice (key:{api.alice_key_id})"]
    for header in ("Basic abc", "Bearer", "Bearer a b", token):
        response = await api.client.get("/v1/jobs", headers={"Authorization": header})
        assert response.status_code == 401, header


async def test_401_names_the_scheme_and_405_the_allowed_methods(api: EdgeApi) -> None:
    for response in (
        await api.client.get("/v1/jobs"),
        await api.client.get("/v1/jobs", headers={"Authorization": "Bearer gk_0_nope"}),
    ):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.headers["content-type"] == "application/problem+json"
    response = await api.client.delete("/v1/generate", headers=api.alice)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.headers["content-type"] == "application/problem+json"


async def test_an_unexpected_error_is_a_500_whose_log_holds_no_user_content(
    api: EdgeApi, caplog: pytest.LogCaptureFixture
) -> None:
    app = api.client._transport.app  # type: ignore[attr-defined]
    assert isinstance(app, FastAPI)

    @app.post("/boom/{item}")
    async def boom(item: str) -> None:
        raise RuntimeError(item)

    app.router.routes.insert(0, app.router.routes.pop())
    app.middleware_stack = None  # rebuilt on the next request, with the new route
    caplog.set_level(logging.ERROR)
    # The transport raises whatever escapes the app: an answered 500 means nothing did.
    response = await api.client.post("/boom/secret-42")
    assert response.status_code == 500
    assert response.json()["code"] == "internal"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "POST /boom/{item}" in logged and "RuntimeError" in logged
    assert "secret-42" not in logged


async def test_the_openapi_document_declares_bearer_auth_and_problem_json(api: EdgeApi) -> None:
    document = (await api.client.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "HTTPValidationError" not in document["components"]["schemas"]
    update = document["paths"]["/v1/jobs/{job_id}"]["patch"]
    assert update["security"] == [{"HTTPBearer": []}]
    for status in ("400", "401", "404", "412", "413", "422", "500", "503"):
        content = update["responses"][status]["content"]
        assert list(content) == ["application/problem+json"], status
    assert "application/json" not in str(
        document["paths"]["/v1/generate"]["post"]["responses"]["422"]
    )
    # Every constraint is one JSON Schema knows (pydantic leaves "le" on a union's field).
    version = document["components"]["schemas"]["JobUpdate"]["properties"]["version"]
    assert (version["minimum"], version["maximum"]) == (1, 2**31 - 1)
    text = json.dumps(document)
    assert not any(f'"{key}":' in text for key in ("ge", "le", "gt", "lt", "max_length"))
    # An integer's bounds are exact integers: as a float, 2**63 - 1 would read as 2**63.
    bounds = _integer_bounds(document)
    assert len(bounds) > 20 and all(type(b) is int for b in bounds), bounds
    seed = document["components"]["schemas"]["ChatCompletionRequest"]["properties"]["seed"]
    assert seed["anyOf"][0]["maximum"] == 2**63 - 1
    # Every map's keys are NUL-free strings, as the guard requires (make fuzz found
    # chat's metadata keys unstated).
    maps = _maps(document)
    assert len(maps) > 3 and all(m.get("propertyNames") == NO_NUL_KEY for m in maps), maps


def _maps(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, list):
        return [m for item in node for m in _maps(item)]
    if not isinstance(node, dict):
        return []
    own = [node] if node.get("additionalProperties") not in (None, False) else []
    return own + [m for value in node.values() for m in _maps(value)]


def _integer_bounds(node: Any) -> list[Any]:
    if isinstance(node, list):
        return [b for item in node for b in _integer_bounds(item)]
    if not isinstance(node, dict):
        return []
    own = [node[k] for k in ("minimum", "maximum") if node.get("type") == "integer" and k in node]
    return own + [b for value in node.values() for b in _integer_bounds(value)]


async def test_anonymous_access_is_declared_where_keys_are_not_enforced(
    settings: Settings, tmp_path: Path
) -> None:
    async with edge_api(settings, tmp_path, auth_required=False) as api:
        document = (await api.client.get("/openapi.json")).json()
    assert document["paths"]["/v1/jobs"]["get"]["security"] == [{"HTTPBearer": []}, {}]


async def test_swagger_ui_and_redoc_are_served_from_genkeep_itself(api: EdgeApi) -> None:
    for page in ("/docs", "/redoc"):
        html = (await api.client.get(page)).text
        assert "cdn" not in html.lower() and "https://" not in html.split("<body>")[1], page
        assets = [part.split('"')[0] for part in html.split('"/docs-assets/')[1:]]
        assert assets, page
        for asset in assets:
            response = await api.client.get(f"/docs-assets/{asset}")
            assert response.status_code == 200 and len(response.content) > 1000, asset
