"""What the console reads: the prompt list (search, paging, owners) and the console's own routes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from genkeep.config import Settings
from genkeep.db.models import UsageEntry
from genkeep.db.spend import Limits
from genkeep.services import Services
from tests.support.console_modules import modules
from tests.support.in_process import in_process


@pytest.fixture
async def app_client(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    async with in_process(settings) as app:
        yield app.client, app.services


async def test_prompt_list_search_paging_and_owners(
    app_client: tuple[httpx.AsyncClient, Services],
) -> None:
    client, services = app_client
    for text in ("Rates of 100% growth", "A note on trams", "Another note on buses"):
        assert (await client.post("/v1/generate", json={"prompt": text})).status_code == 200
    listed = (await client.get("/v1/prompts")).json()
    assert [p["prompt"] for p in listed] == [
        "Another note on buses",
        "A note on trams",
        "Rates of 100% growth",
    ]
    assert [p["latest_version"] for p in listed] == [1, 1, 1]
    note = (await client.get("/v1/prompts", params={"q": "NOTE"})).json()
    assert {p["prompt"] for p in note} == {"A note on trams", "Another note on buses"}
    # LIKE wildcards in the search are literal characters.
    assert [p["prompt"] for p in (await client.get("/v1/prompts?q=%25")).json()] == [
        "Rates of 100% growth"
    ]
    assert (await client.get("/v1/prompts", params={"q": "_"})).json() == []
    page = (await client.get("/v1/prompts", params={"limit": 2, "offset": 2})).json()
    assert [p["prompt"] for p in page] == ["Rates of 100% growth"]
    assert (await client.get("/v1/prompts", params={"limit": 0})).status_code == 422

    _, token = await services.keys.create("someone-else")
    theirs = await client.get("/v1/prompts", headers={"Authorization": f"Bearer {token}"})
    assert theirs.status_code == 200 and theirs.json() == []


async def test_console_pages_and_assets_come_from_the_package(
    app_client: tuple[httpx.AsyncClient, Services],
) -> None:
    client, _ = app_client
    root = await client.get("/")
    assert root.status_code == 307 and root.headers["location"] == "/console"
    pages = {
        "/console": "generate",
        "/console/prompts": "prompts",
        "/console/jobs": "jobs",
        "/console/jobs/any": "job",
        "/console/tasks/any": "task",
        "/console/runs": "runs",
        "/console/runs/any": "run",
        "/console/usage": "usage",
        "/console/ops": "ops",
        "/console/login": "login",
        "/console/nowhere": "notfound",
    }
    for path, name in pages.items():
        page = await client.get(path)
        assert page.status_code == (404 if name == "notfound" else 200), path
        # One module per page, which imports the shared ones (tests/unit/test_console_modules).
        scripts = re.findall(r"<script[^>]*>", page.text)
        assert scripts == [f'<script type="module" src="/console/static/pages/{name}.js">'], path
        assert "http://" not in page.text.split("<footer>")[0]  # no CDN or other host
    for module in modules():
        script = await client.get(f"/console/static/{module}")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        # Asked again on each use, so a page never runs a cached module beside a newer one.
        assert script.headers["cache-control"] == "no-cache", module
        again = await client.get(
            f"/console/static/{module}", headers={"If-None-Match": script.headers["etag"]}
        )
        assert again.status_code == 304 and again.headers["cache-control"] == "no-cache"
    style = await client.get("/console/static/console.css")
    assert style.status_code == 200 and style.headers["cache-control"] == "no-cache"
    sample = await client.get("/console/samples/ontology")
    assert sample.status_code == 200 and "owl:Ontology" in sample.text
    assert (await client.get("/console/samples/secrets")).status_code == 404
    assert "/console" not in (await client.get("/openapi.json")).json()["paths"]


async def test_the_job_page_offers_the_catalogues_kinds(
    app_client: tuple[httpx.AsyncClient, Services],
) -> None:
    client, services = app_client
    page = await client.get("/console/jobs/any-job")
    assert page.status_code == 200
    select = page.text.split('id="task-kind"')[1].split("</select>")[0]
    offered = re.findall(r'<option value="([^"]+)"', select)
    # Built-in kinds and the test extension's (GENKEEP_TASK_MODULES), as the API accepts them.
    assert offered == services.catalogue.names()
    assert {"export", "extract", "generate", "sleep", "noop"} <= set(offered)


async def test_the_caller_and_its_stored_usage_are_its_own(
    app_client: tuple[httpx.AsyncClient, Services],
) -> None:
    client, services = app_client
    _, token = await services.keys.create("bob", "console")
    bob = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/v1/me")).json() == {"owner": "default", "key_id": None}
    me = (await client.get("/v1/me", headers=bob)).json()
    assert me["owner"] == "bob" and token.startswith(f"gk_{me['key_id']}_")

    made = (await client.post("/v1/generate", json={"prompt": "Counted once"})).json()
    assert (await client.post("/v1/generate", json={"prompt": "Counted once"})).json()["cached"]
    edit = await client.post(f"/v1/results/{made['result_id']}/edits", json={"content": "mine"})
    assert edit.status_code in (200, 201), edit.text
    usage = (await client.get("/v1/me/stored-usage")).json()
    by_source = {row["source"]: row for row in usage}
    # One generator call stored (the hit stored nothing), and one edit that called nothing.
    assert set(by_source) == {"generated", "edited"}
    assert by_source["generated"]["results"] == 1 and by_source["edited"]["results"] == 1
    assert by_source["generated"]["profile"] == "default"
    # The stored result's tokens are the ones its call was charged (counted at the ledger).
    async with services.database.reading() as session:
        [call] = (
            await session.execute(select(UsageEntry).where(UsageEntry.hit.is_(False)))
        ).scalars()
    assert (call.prompt_tokens, call.completion_tokens) == (
        by_source["generated"]["prompt_tokens"],
        by_source["generated"]["completion_tokens"],
    )
    assert call.completion_tokens > 0
    assert (await client.get("/v1/me/stored-usage", headers=bob)).json() == []  # I3


async def test_an_owner_reads_its_own_keys_limits_and_no_one_elses(
    app_client: tuple[httpx.AsyncClient, Services],
) -> None:
    client, services = app_client
    first, alice = await services.keys.create("alice", "laptop")
    second, _ = await services.keys.create("alice", "ci")
    gone, _ = await services.keys.create("alice", "old")
    await services.keys.revoke(gone.id)
    bobs, bob = await services.keys.create("bob", "console")
    spend = services.spend
    await spend.set_limits(f"key:{first.id}", Limits(rpm=30, tpm=9000))
    await spend.set_limits("owner:alice", Limits(budget_micros=2_500_000, budget_period="month"))
    await spend.set_limits(f"key:{bobs.id}", Limits(rpm=7))
    await spend.set_limits(f"key:{gone.id}", Limits(rpm=1))

    mine = await client.get("/v1/usage/limits", headers={"Authorization": f"Bearer {alice}"})
    assert mine.status_code == 200, mine.text
    rows = {row["subject"]: row for row in mine.json()}
    # Her owner row and her live keys (the revoked one is gone); none of bob's (I3).
    assert list(rows) == ["owner:alice", f"key:{first.id}", f"key:{second.id}"]
    assert rows[f"key:{first.id}"]["name"] == "laptop"
    assert rows[f"key:{first.id}"]["limits"]["rpm"] == 30
    assert rows[f"key:{first.id}"]["limits"]["tpm"] == 9000
    assert rows[f"key:{second.id}"]["limits"] is None
    owner_limits = rows["owner:alice"]["limits"]
    assert owner_limits["budget_usd"] == 2.5 and owner_limits["budget_period"] == "month"
    theirs = await client.get("/v1/usage/limits", headers={"Authorization": f"Bearer {bob}"})
    assert [(r["subject"], r["limits"] and r["limits"]["rpm"]) for r in theirs.json()] == [
        ("owner:bob", None),
        (f"key:{bobs.id}", 7),
    ]
