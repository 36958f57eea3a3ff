"""The hot routes answer every request exactly as FastAPI's own handler would.

``create_app(hot_routes=False)`` builds the same app with the plain route classes
(``GuardedRoute``, ``OpenAIRoute``) for /v1/generate and /v1/chat/completions. Each request
goes to both apps, on one database, and the answers must be the same: status, headers, body.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Header, Query
from fastapi.responses import JSONResponse

from genkeep.api.app import create_app
from genkeep.api.deps import OwnerDep, audit, current_owner
from genkeep.api.guard import GuardedRoute
from genkeep.api.hot import HotRoute, OpenAIHotRoute, UnservableRoute
from genkeep.api.openai_errors import OpenAIRoute
from genkeep.api.schemas import GenerateRequest
from genkeep.config import Settings
from tests.support.in_process import InProcess, in_process

GENERATE = "/v1/generate"
CHAT_PATH = "/v1/chat/completions"
CHAT = {"model": "default", "messages": [{"role": "user", "content": "Say hi"}]}
JSON = {"Content-Type": "application/json"}
MAX_BODY = 4096

Send = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


@dataclass(frozen=True)
class Apps:
    hot: InProcess
    plain: InProcess

    async def both(self, send: Send) -> tuple[httpx.Response, httpx.Response]:
        return await send(self.hot.client), await send(self.plain.client)


@asynccontextmanager
async def apps_for(settings: Settings) -> AsyncIterator[Apps]:
    async with (
        in_process(settings) as hot,
        in_process(settings, hot_routes=False) as plain,
    ):
        # The oracle really is another path: FastAPI's handler behind the plain route classes.
        assert {type(r) for r in routes_of(hot.app)} == {HotRoute, OpenAIHotRoute}
        assert {type(r) for r in routes_of(plain.app)} == {GuardedRoute, OpenAIRoute}
        yield Apps(hot, plain)


def routes_of(app: FastAPI) -> list[Any]:
    return [r for r in app.router.routes if getattr(r, "path", "") in (GENERATE, CHAT_PATH)]


@pytest.fixture
async def apps(settings: Settings) -> AsyncIterator[Apps]:
    limits = {"max_prompt_bytes": 1000, "max_chat_bytes": 1000, "max_body_bytes": MAX_BODY}
    async with apps_for(settings.model_copy(update=limits)) as opened:
        yield opened


def same_answer(hot: httpx.Response, plain: httpx.Response) -> None:
    assert hot.status_code == plain.status_code, (hot.text, plain.text)
    # Each answer carries its own request's trace id.
    assert hot.headers.multi_items()[:-1] == plain.headers.multi_items()[:-1]
    assert hot.headers.multi_items()[-1][0] == "x-request-id"
    # A chat completion says when it was made, to the second.
    created = re.compile(rb'"created":\d+')
    assert created.sub(b"", hot.content) == created.sub(b"", plain.content)


def post(
    path: str, body: object, headers: dict[str, str] | None = None, *, query: str = ""
) -> Send:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()

    async def send(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post(
            path + query, content=content, headers=JSON if headers is None else headers
        )

    return send


REFUSED_GENERATE = [
    pytest.param({}, JSON, id="missing-prompt"),
    pytest.param({"prompt": ""}, JSON, id="empty-prompt"),
    pytest.param({"prompt": "   "}, JSON, id="blank-prompt"),
    pytest.param({"prompt": 5}, JSON, id="prompt-not-a-string"),
    pytest.param({"prompt": "a\u0000b"}, JSON, id="nul"),
    pytest.param({"prompt": "a\ud800b"}, JSON, id="lone-surrogate"),
    pytest.param({"prompt": "x" * 2000}, JSON, id="prompt-too-large"),
    pytest.param({"prompt": "known", "profile": "nope"}, JSON, id="unknown-profile"),
    pytest.param({"prompt": "known", "unknown": 1}, JSON, id="unknown-field"),
    pytest.param({"prompt": "known", "cache": {"max_age": False}}, JSON, id="bad-cache"),
    pytest.param({"prompt": "x" * (2 * MAX_BODY)}, JSON, id="body-over-the-cap"),
    pytest.param([], JSON, id="not-an-object"),
    pytest.param(b"not json", JSON, id="invalid-json"),
    pytest.param(b'{"prompt": NaN}', JSON, id="nan"),
    pytest.param(b"[" * 100 + b"]" * 100, JSON, id="too-deep"),
    pytest.param(b"", JSON, id="empty-body"),
    pytest.param({"prompt": "known"}, {"Content-Type": "text/plain"}, id="text-plain"),
    pytest.param({"prompt": "known"}, {}, id="no-content-type"),
    pytest.param({"prompt": "known"}, {**JSON, "Authorization": "Basic abc"}, id="basic"),
    pytest.param(
        {"prompt": "known"}, {**JSON, "Authorization": "Bearer no-such-key"}, id="unknown-key"
    ),
    # The owner is decided before the body is validated: 401 before 422.
    pytest.param({"prompt": 5}, {**JSON, "Authorization": "Basic abc"}, id="basic-and-bad-body"),
]

REFUSED_CHAT = [
    pytest.param({}, JSON, id="empty"),
    pytest.param({**CHAT, "model": "nope"}, JSON, id="unknown-model"),
    pytest.param({**CHAT, "n": 2}, JSON, id="n"),
    pytest.param({**CHAT, "tools": [{"type": "function"}]}, JSON, id="tools"),
    pytest.param({**CHAT, "messages": []}, JSON, id="no-messages"),
    pytest.param({**CHAT, "messages": [{"role": "user", "content": "a\u0000"}]}, JSON, id="nul"),
    pytest.param({**CHAT, "temperature": 9}, JSON, id="temperature"),
    pytest.param(
        {**CHAT, "messages": [{"role": "user", "content": "x" * 2000}]}, JSON, id="too-large"
    ),
    pytest.param({**CHAT, "metadata": {"x" * (2 * MAX_BODY): "y"}}, JSON, id="over-the-cap"),
    pytest.param(b"{", JSON, id="invalid-json"),
    pytest.param(b"", JSON, id="empty-body"),
    pytest.param(CHAT, {"Content-Type": "text/plain"}, id="text-plain"),
    pytest.param(CHAT, {**JSON, "Authorization": "Basic abc"}, id="basic"),
    pytest.param(CHAT, {**JSON, "Authorization": "Bearer no-such-key"}, id="unknown-key"),
    pytest.param({**CHAT, "n": 2}, {**JSON, "Authorization": "Basic a"}, id="basic-and-bad-body"),
]


@pytest.mark.parametrize(("body", "headers"), REFUSED_GENERATE)
async def test_generate_refuses_as_fastapi_does(
    apps: Apps, body: object, headers: dict[str, str]
) -> None:
    hot, plain = await apps.both(post(GENERATE, body, headers))
    assert 400 <= hot.status_code < 500
    assert hot.headers["content-type"] == "application/problem+json"
    same_answer(hot, plain)


@pytest.mark.parametrize(("body", "headers"), REFUSED_CHAT)
async def test_chat_refuses_as_fastapi_does(
    apps: Apps, body: object, headers: dict[str, str]
) -> None:
    hot, plain = await apps.both(post(CHAT_PATH, body, headers))
    assert 400 <= hot.status_code < 500
    assert set(hot.json()) == {"error"}
    same_answer(hot, plain)


@pytest.mark.parametrize("path", [GENERATE, CHAT_PATH])
async def test_the_rest_of_http_is_answered_alike(apps: Apps, path: str) -> None:
    """A NUL in the query, two Authorization headers, a body sent in chunks past the cap,
    another method: each refused the same way by both."""

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b" " * MAX_BODY

    async def over_the_cap(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post(path, content=chunked(), headers=JSON)

    async def get(client: httpx.AsyncClient) -> httpx.Response:
        return await client.get(path)

    two_keys = [("content-type", "application/json"), ("authorization", "Bearer a")] * 2

    async def twice(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post(path, content=json.dumps(CHAT).encode(), headers=two_keys)

    # OpenAI's clients know a refused parameter as 400, not 422.
    nul_in_query = 422 if path == GENERATE else 400
    sends = [
        (over_the_cap, 413),
        (get, 405),
        (twice, 400),
        (post(path, CHAT, query="?x=%00"), nul_in_query),
    ]
    for send, status in sends:
        hot, plain = await apps.both(send)
        assert hot.status_code == status, hot.text
        same_answer(hot, plain)


async def test_hits_and_misses_read_alike(apps: Apps) -> None:
    """A miss each (generated and stored), then the same hit from both; a no-store miss,
    with the body's directive or the Cache-Control header, is the same answer too."""
    first, second = {"prompt": "Asked of the hot app"}, {"prompt": "Asked of the plain one"}
    hot = await apps.hot.client.post(GENERATE, json=first)
    plain = await apps.plain.client.post(GENERATE, json=second)
    assert hot.status_code == plain.status_code == 200
    assert hot.headers.keys() == plain.headers.keys()
    shape = ("cached", "coalesced", "persisted", "version")
    assert (
        [hot.json()[k] for k in shape]
        == [plain.json()[k] for k in shape]
        == [
            False,
            False,
            True,
            1,
        ]
    )
    for body in (first, second):
        hot, plain = await apps.both(post(GENERATE, body))
        assert hot.json()["cached"] is True
        same_answer(hot, plain)
    kept_nowhere: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({"prompt": "Kept nowhere", "cache": {"no_store": True}}, JSON),
        ({"prompt": "Kept nowhere either"}, {**JSON, "Cache-Control": "no-store"}),
    ]
    for asked, headers in kept_nowhere:
        hot, plain = await apps.both(post(GENERATE, asked, headers))
        assert hot.json()["persisted"] is False
        same_answer(hot, plain)
    # Cache-Control reaches the endpoint: no-cache generates a new version.
    hot, plain = await apps.both(post(GENERATE, first, {**JSON, "Cache-Control": "no-cache"}))
    assert hot.json()["cached"] is plain.json()["cached"] is False


async def test_chat_hits_read_alike(apps: Apps) -> None:
    seeded = await apps.hot.client.post(CHAT_PATH, json=CHAT)
    assert seeded.status_code == 200 and seeded.headers["x-genkeep-cached"] == "false"
    for body in (CHAT, {**CHAT, "stream": True}):
        hot, plain = await apps.both(post(CHAT_PATH, body))
        assert hot.headers["x-genkeep-cached"] == "true"
        same_answer(hot, plain)


async def test_owners_answer_alike(settings: Settings) -> None:
    """Keys enforced: none, a revoked one, another owner's (a miss of its own), a good one."""
    enforced = settings.model_copy(update={"auth_required": True})
    async with apps_for(enforced) as apps:
        _, mine = await apps.hot.services.keys.create("me")
        theirs_row, theirs = await apps.hot.services.keys.create("them")
        await apps.hot.client.post(
            GENERATE, json={"prompt": "Mine"}, headers={"Authorization": f"Bearer {mine}"}
        )
        await apps.hot.services.keys.revoke(theirs_row.id)
        for headers in ({}, {"Authorization": f"Bearer {theirs}"}):
            hot, plain = await apps.both(post(GENERATE, {"prompt": "Mine"}, {**JSON, **headers}))
            assert hot.status_code == 401 and "www-authenticate" in hot.headers
            same_answer(hot, plain)
            hot, plain = await apps.both(post(CHAT_PATH, CHAT, {**JSON, **headers}))
            assert hot.status_code == 401
            same_answer(hot, plain)
        hot, plain = await apps.both(
            post(GENERATE, {"prompt": "Mine"}, {**JSON, "Authorization": f"Bearer  {mine} "})
        )
        assert hot.json()["cached"] is True
        same_answer(hot, plain)
    gateway = settings.model_copy(update={"owner_header": "X-Owner"})
    async with apps_for(gateway) as apps:
        await apps.hot.client.post(GENERATE, json={"prompt": "Ours"}, headers={"X-Owner": "a"})
        for owner in ("", "not an id", "a"):
            hot, plain = await apps.both(
                post(GENERATE, {"prompt": "Ours"}, {**JSON, "X-Owner": owner})
            )
            assert hot.status_code == (200 if owner == "a" else 401)
            same_answer(hot, plain)


async def _returns(body: GenerateRequest, owner: OwnerDep) -> JSONResponse:
    return JSONResponse({"owner": owner})


async def _with_path(name: str, body: GenerateRequest) -> JSONResponse:
    return JSONResponse({})


async def _with_query(body: GenerateRequest, limit: Annotated[int, Query()] = 1) -> JSONResponse:
    return JSONResponse({})


async def _with_audit(body: GenerateRequest, who: Annotated[Any, Depends(audit)]) -> JSONResponse:
    return JSONResponse({})


async def _with_int_header(
    body: GenerateRequest, tries: Annotated[int | None, Header()] = None
) -> JSONResponse:
    return JSONResponse({})


async def _no_body(owner: OwnerDep) -> JSONResponse:
    return JSONResponse({})


async def _model_out(body: GenerateRequest) -> dict[str, str]:
    return {}


@pytest.mark.parametrize(
    ("path", "endpoint", "refused"),
    [
        ("/x/{name}", _with_path, "path parameters (name)"),
        ("/x", _with_query, "query parameters (limit)"),
        ("/x", _with_audit, "the dependency 'audit'"),
        ("/x", _with_int_header, "header parameter"),
        ("/x", _no_body, "one JSON body model"),
        ("/x", _model_out, "returning a Response"),
    ],
)
def test_a_route_with_what_it_would_skip_fails_at_start_up(
    path: str, endpoint: Callable[..., Any], refused: str
) -> None:
    app = FastAPI()
    app.router.add_api_route(path, _returns, methods=["POST"], route_class_override=HotRoute)
    with pytest.raises(UnservableRoute, match=re.escape(refused)):
        app.router.add_api_route(path, endpoint, methods=["POST"], route_class_override=HotRoute)


def test_the_document_is_the_plain_apps(settings: Settings) -> None:
    """The OpenAPI document comes from the routes' signatures: the same with either class."""
    hot = create_app(settings).openapi()
    plain = create_app(settings, hot_routes=False).openapi()
    assert hot == plain
    operation = hot["paths"][GENERATE]["post"]
    assert [p["name"] for p in operation["parameters"]] == ["cache-control"]
    assert {"HTTPBearer": []} in operation["security"]
    assert "requestBody" in operation


async def test_a_dependency_override_is_refused_not_skipped(settings: Settings) -> None:
    """An override the lean handler cannot apply fails the request (500, logged)."""
    async with in_process(settings) as hot:

        async def someone() -> str:
            return "someone"

        hot.app.dependency_overrides[current_owner] = someone
        answer = await hot.client.post(GENERATE, json={"prompt": "Whose?"})
        assert answer.status_code == 500
        assert answer.json()["code"] == "internal"
