"""The web console in a real Chromium against a real ``genkeep serve``.

Debian's /usr/bin/chromium is driven by Playwright; a missing browser fails the run.
Screenshots go to ``GENKEEP_SCREENSHOTS`` (``make screenshots``: docs/console/) if set.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import (
    APIResponse,
    Dialog,
    Page,
    Route,
    expect,
)
from rdflib import Graph
from sqlalchemy import func, insert, select

from genkeep.db.database import Database
from genkeep.db.models import JobEvent, Prompt, Task
from genkeep.db.types import utcnow
from tests.conftest import process_env
from tests.integration.test_duplicates import _drop_unique_key
from tests.integration.test_ops_api import prompt_rows
from tests.support.console_modules import closure
from tests.support.jobs import confirmed_job, export_markdown
from tests.support.server import Server, run_cli

pytestmark = pytest.mark.e2e

TEXT_COPIES = 120  # about 400 kB: several hundred one-chunk batches, still running at cancel
T = TypeVar("T")
# A test of what the browser shows and does, not of the data: the database does not change
# it, so it runs on SQLite only (the flows that write and read data run on both).
BROWSER_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def in_database(db_url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``work`` on the test's database, at the source, not through the API. In a thread:
    Playwright's event loop runs in this one."""

    async def main() -> T:
        database = Database(db_url)
        try:
            return await work(database)
        finally:
            await database.dispose()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


def shot(page: Page, backend: str, name: str) -> None:
    """Keep a full-page screenshot for the docs (once, from the SQLite run)."""
    folder = os.environ.get("GENKEEP_SCREENSHOTS")
    if folder and backend == "sqlite":
        Path(folder).mkdir(parents=True, exist_ok=True)
        # A viewport as tall as the page, not full_page=True: Chromium leaves a sandboxed
        # iframe (the prompt's preview) blank in a screenshot taller than the viewport.
        viewport = page.viewport_size or {"width": 1280, "height": 900}
        height = page.evaluate("document.documentElement.scrollHeight")
        page.set_viewport_size({"width": viewport["width"], "height": height})
        page.wait_for_timeout(200)  # the iframe repaints at the new size
        page.screenshot(path=str(Path(folder) / f"{name}.png"))
        page.set_viewport_size(viewport)


def wait_until(page: Page, expression: str, timeout_s: float = 30.0) -> None:
    """Poll ``expression`` until it is true. Playwright's wait_for_function polls with eval,
    which the console's Content-Security-Policy rightly blocks; evaluate does not."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout_s} s: {expression}")
        page.wait_for_timeout(50)


def wait_for(page: Page, check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Let the page run (its events reach this test's handlers) until ``check()`` holds."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout_s} s")
        page.wait_for_timeout(20)


def tab(page: Page, name: str) -> None:
    """Open one of the job page's tabs."""
    page.get_by_role("tab", name=name).click()
    expect(page.get_by_role("tab", name=name)).to_have_attribute("aria-selected", "true")


def test_generate_cache_edit_export(
    servers: Callable[..., Server], page: Page, backend: str, tmp_path: Path
) -> None:
    server = servers()
    page.goto(server.url + "/")
    expect(page).to_have_url(server.url + "/console")

    # Bad input: the API's problem is shown next to the prompt, and nothing is written.
    page.get_by_label("Prompt").fill("   ")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#prompt-error")).to_contain_text("empty")
    page.get_by_label("Prompt").fill("A fine prompt")
    expect(page.get_by_label("max-age (seconds)")).to_be_disabled()
    page.get_by_label("Cache control").select_option("max-age")
    page.get_by_label("max-age (seconds)").fill("-5")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#prompt-error")).to_contain_text("max_age")
    expect(page.locator("#answer")).to_be_hidden()
    assert httpx.get(f"{server.url}/v1/prompts").json() == []
    page.get_by_label("Cache control").select_option("")

    page.get_by_label("Prompt").fill("Write a short note on durable generation")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#answer-outcome")).to_have_text("generated")
    expect(page.locator("#answer-version")).to_have_text("1")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#answer-outcome")).to_have_text("cached")
    shot(page, backend, "generate")

    page.get_by_role("link", name="open the prompt page").click()
    expect(page.locator("body[data-ready]")).to_have_count(1)
    expect(page.locator("#versions tbody tr")).to_have_count(1)
    page.get_by_label("Content (edit to save a new version)").fill("# Edited\n\nBy a person.")
    page.get_by_role("button", name="Save as new version").click()
    expect(page.locator("body[data-ready]")).to_have_count(1)
    expect(page.locator("#versions tbody tr")).to_have_count(2)
    expect(page.locator('#versions tr[data-version="2"]')).to_contain_text("edited")
    expect(page.frame_locator("#preview").locator("h1")).to_have_text("Edited")

    expect(page.locator("#export-facts")).to_be_hidden()
    with page.expect_download() as info:
        page.get_by_role("button", name="PDF").click()
    pdf = Path(info.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF-")
    expect(page.locator("#export-facts")).to_be_visible()
    shown_id = page.locator("#export-result").inner_text()
    shown_sha = page.locator("#export-sha").inner_text()
    shown_content_sha = page.locator("#export-content-sha").inner_text()

    prompt_id = page.url.rsplit("/", 1)[1]
    prompt = httpx.get(f"{server.url}/v1/prompts/{prompt_id}").json()
    latest = httpx.get(f"{server.url}/v1/results/{prompt['latest_result_id']}").json()
    assert (latest["version"], latest["source"]) == (2, "edited")
    assert shown_id == latest["id"]
    # The hash shown with a download is the downloaded file's; the content's is shown apart.
    assert shown_sha == hashlib.sha256(pdf).hexdigest()
    assert shown_content_sha == latest["content_sha256"]
    assert shown_content_sha == hashlib.sha256(latest["content"].encode()).hexdigest()

    page.locator("#diff-form").get_by_role("button", name="Show diff").click()
    expect(page.locator("#diff .add").first).to_contain_text("# Edited")
    shot(page, backend, "prompt")

    page.get_by_role("link", name="Prompts").click()
    # The list is loaded (its "Loading…" placeholder row would count as one row too).
    expect(page.locator("body[data-loaded]")).to_have_count(1)
    expect(page.locator("#prompt-table tbody tr")).to_have_count(1)
    page.get_by_label("Search prompts").fill("no such words")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#prompt-table tbody tr")).to_have_count(0)
    page.get_by_label("Search prompts").fill("DURABLE")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#prompt-table tbody tr")).to_have_count(1)
    shot(page, backend, "prompts")

    page.get_by_role("link", name="Operations").click()
    expect(page.locator("#readyz")).to_have_text("200 ready")
    hits = page.locator('tr[data-metric="genkeep_cache_hits_total"] td').last
    expect(hits).to_have_text("1")
    expect(page.locator("body[data-ready]")).to_have_count(1)
    expect(page.locator('#queue tr[data-status="queued"] td').last).to_have_text("0")
    expect(page.locator("#duplicates-none")).to_be_visible()

    # Usage: the owner's calls and hits from the usage ledger, and the stored results.
    page.get_by_role("link", name="Usage").click()
    expect(page.locator("body[data-ready]")).to_have_count(1)
    expect(page.locator('#stored-usage tr[data-source="generated"] td').nth(2)).to_have_text("1")
    expect(page.locator('#stored-usage tr[data-source="edited"] td').nth(2)).to_have_text("1")
    expect(page.locator("#usage-calls")).to_have_text("1")
    expect(page.locator("#usage-hits")).to_have_text("1")
    expect(page.locator("#usage-rate")).to_have_text("50 % of answers were hits")
    expect(page.locator("#usage-cost")).to_have_text("$0.00")  # the built-in generator is free
    page.get_by_label("Group by").select_option("profile")
    expect(page).to_have_url(re.compile(r"/console/usage\?by=profile$"))
    by_profile = page.locator('#usage-table tr[data-group="default"] td')
    expect(by_profile.nth(1)).to_have_text("1")  # calls
    expect(by_profile.nth(2)).to_have_text("1")  # hits
    page.reload()
    expect(page.get_by_label("Group by")).to_have_value("profile")
    expect(by_profile.nth(2)).to_have_text("1")
    shot(page, backend, "usage")


async def alice_has_duplicates(database: Database) -> None:
    """Rows written around the unique constraint (I1), as in tests/integration/test_duplicates."""
    # A write transaction from its BEGIN: the running server holds readers, and a deferred
    # one that reads the schema first cannot wait for the write lock ("database is locked").
    async with database.writing() as connection:
        await connection.run_sync(_drop_unique_key)
    async with database.transaction() as session:
        await session.execute(insert(Prompt), prompt_rows("alice", "h" * 64, ["dup-1", "dup-2"]))


def test_auth_required_keeps_owners_apart(
    servers: Callable[..., Server], page: Page, db_url: str, backend: str, tmp_path: Path
) -> None:
    env = process_env(db_url, tmp_path)
    tokens = {}
    for owner in ("alice", "bob"):
        made = run_cli(["keys", "create", "--owner", owner], env)
        assert made.returncode == 0, made.stderr
        tokens[owner] = made.stdout.strip().splitlines()[-1]
    limited = run_cli(["keys", "update", tokens["alice"], "--rpm", "600"], env)
    assert limited.returncode == 0, limited.stderr
    server = servers(GENKEEP_AUTH_REQUIRED="true")

    page.goto(server.url + "/console")
    expect(page).to_have_url(server.url + "/console/login?next=%2Fconsole")
    page.get_by_label("API key").fill("gk_not_a_key")
    page.get_by_role("button", name="Use this key").click()
    expect(page.locator("#login-error")).to_contain_text("invalid")
    shot(page, backend, "login")

    page.get_by_label("API key").fill(tokens["alice"])
    page.get_by_role("button", name="Use this key").click()
    expect(page).to_have_url(server.url + "/console")
    expect(page.locator("#who")).to_have_text("signed in as alice")
    # A new tab is handed the key by the open one (in memory): no second sign-in, and
    # nothing written to disk without "Remember on this device".
    second = page.context.new_page()
    second.goto(server.url + "/console/jobs")
    expect(second.locator("#who")).to_have_text("signed in as alice")
    expect(second).to_have_url(server.url + "/console/jobs")
    assert second.evaluate("localStorage.length") == 0
    second.close()
    page.get_by_label("Prompt").fill("Alice's private prompt")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#answer-outcome")).to_have_text("generated")
    page.get_by_role("link", name="Prompts").click()
    expect(page.locator("body[data-loaded]")).to_have_count(1)
    expect(page.locator("#prompt-table tbody tr")).to_have_count(1)

    alice = {"Authorization": f"Bearer {tokens['alice']}"}
    # Her usage, by key: her call, under the key she made it with.
    alice_key = httpx.get(f"{server.url}/v1/me", headers=alice).json()["key_id"]
    page.goto(f"{server.url}/console/usage?by=key")
    expect(page.locator("#usage-table tbody tr")).to_have_count(1)
    expect(page.locator(f'#usage-table tr[data-group="{alice_key}"] td').nth(1)).to_have_text("1")
    # And her keys' limits, read-only: her owner row and her one key, none of bob's.
    expect(page.locator("#limits-table tbody tr")).to_have_count(2)
    expect(
        page.locator(f'#limits-table tr[data-subject="key:{alice_key}"] td').nth(1)
    ).to_have_text("600")
    job = httpx.post(f"{server.url}/v1/jobs", json={"title": "Alice's job"}, headers=alice)
    assert job.status_code == 201, job.text
    # The audit log names the owner (and the key it used), not "api".
    created = httpx.get(f"{server.url}/v1/jobs/{job.json()['id']}/events", headers=alice).json()
    assert created[0]["actor"].startswith("alice (key:"), created[0]
    run = httpx.post(
        f"{server.url}/v1/runs",
        json={"text": "A tram.", "ontology": (SAMPLES / "ontology.ttl").read_text()},
        headers=alice,
    )
    assert run.status_code == 202, run.text
    page.get_by_role("link", name="Jobs").click()
    expect(page.locator("#job-table tbody tr")).to_have_count(1)

    # The duplicate check is alice's own: her page lists her duplicate, bob's does not (I3).
    in_database(db_url, alice_has_duplicates)
    page.get_by_role("link", name="Operations").click()
    expect(page.locator("body[data-ready]")).to_have_count(1)
    expect(page.locator("#duplicates tbody tr")).to_have_count(1)
    expect(page.locator("#duplicates tbody tr")).to_contain_text("dup-1")
    expect(page.locator("#duplicates tbody tr td").nth(2)).to_have_text("2")
    shot(page, backend, "operations")

    page.get_by_role("button", name="Forget key").click()
    page.get_by_label("API key").fill(tokens["bob"])
    page.get_by_role("button", name="Use this key").click()
    page.get_by_role("link", name="Prompts").click()
    expect(page.locator("#prompt-empty")).to_be_visible()
    expect(page.locator("#prompt-table tbody tr")).to_have_count(0)
    page.get_by_role("link", name="Jobs").click()
    expect(page.locator("#job-empty")).to_be_visible()
    page.get_by_role("link", name="Extraction runs").click()
    expect(page.locator("#run-empty")).to_be_visible()
    page.get_by_role("link", name="Usage").click()
    expect(page.locator("#usage-empty")).to_be_visible()
    expect(page.locator("#usage-calls")).to_have_text("0")
    page.get_by_role("link", name="Operations").click()
    expect(page.locator("body[data-ready]")).to_have_count(1)
    expect(page.locator("#duplicates-none")).to_be_visible()
    expect(page.locator("#duplicates tbody tr")).to_have_count(0)
    page.goto(f"{server.url}/console/jobs/{job.json()['id']}")
    expect(page.locator("#page-error")).to_contain_text("not found")


def test_job_gates_conflict_and_live_export(
    servers: Callable[..., Server], page: Page, backend: str
) -> None:
    server = servers()
    streams: list[str] = []
    page.on("request", lambda r: streams.append(r.url) if r.url.endswith("/events") else None)
    page.goto(server.url + "/console/jobs")
    expect(page.locator("#job-empty")).to_be_visible()
    page.get_by_label("New job title").fill("Quarterly report")
    page.get_by_role("button", name="Create job").click()
    expect(page.locator("#job-title")).to_have_text("Quarterly report")
    job_id = page.url.rsplit("/", 1)[1]

    tab(page, "Sections")
    page.get_by_role("button", name="Add section").click()
    page.get_by_label("Content").fill("# Summary\n\nAll is well.")
    page.get_by_role("button", name="Save sections").click()
    expect(page.locator("#job-version")).to_have_text("2")
    expect(page.locator("#gate-confirmed")).to_have_text("sections not confirmed")

    # A gate that is closed: the API's refusal is shown next to the export form.
    tab(page, "Tasks")
    page.get_by_role("button", name="Submit task").click()
    expect(page.locator("#task-error")).to_contain_text("not confirmed")

    # Someone else changes the job: the console's next change is refused and says so.
    changed = httpx.patch(f"{server.url}/v1/jobs/{job_id}", json={"title": "Renamed elsewhere"})
    assert changed.status_code == 200, changed.text
    tab(page, "Sections")
    page.get_by_role("button", name="Confirm sections").click()
    expect(page.locator("#conflict")).to_be_visible()
    assert httpx.get(f"{server.url}/v1/jobs/{job_id}").json()["sections_confirmed"] is False
    page.get_by_role("button", name="Reload").click()
    expect(page.locator("#job-title")).to_have_text("Renamed elsewhere")
    page.get_by_role("button", name="Confirm sections").click()
    expect(page.locator("#gate-confirmed")).to_have_text("sections confirmed")

    page.evaluate("window.stayedOnPage = true")
    tab(page, "Tasks")
    page.get_by_role("button", name="Submit task").click()
    row = page.locator("#tasks tbody tr").first
    expect(row).to_have_attribute("data-status", "completed")
    assert page.locator("#tasks progress").first.evaluate("p => p.value") == 1
    assert page.evaluate("window.stayedOnPage") is True  # progress came without a reload
    assert any("/v1/tasks/" in url for url in streams)
    tab(page, "Audit log")
    expect(page.locator("#events li").first).to_be_visible()
    expect(page.locator("#events")).to_contain_text("task.queued")
    # The audit timeline follows the task too, still without a reload.
    expect(page.locator("#events")).to_contain_text("task.completed")

    tab(page, "Artifacts")
    download = page.locator("button.download").first
    expect(download).to_be_visible()
    expect(page.locator(".artifact-kind li").first).to_contain_text("(latest)")
    with page.expect_download() as info:
        download.click()
    data = Path(info.value.path()).read_bytes()
    assert data.startswith(b"%PDF-") or data.startswith(b"PK\x03\x04")
    shot(page, backend, "job-export")
    page.goto(server.url + "/console/jobs")
    expect(page.locator("#job-table tbody tr")).to_have_count(1)
    shot(page, backend, "jobs")


SAMPLES = Path(__file__).resolve().parents[2] / "src" / "genkeep" / "extract" / "samples"


def test_extraction_run_cancel_resume_and_highlights(
    servers: Callable[..., Server], page: Page, backend: str, tmp_path: Path
) -> None:
    server = servers()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(f"{r.method} {r.url}"))
    page.goto(server.url + "/console/runs")
    # Bad input first: a malformed ontology is refused with the API's sentence, and no run exists.
    page.get_by_label("Text", exact=True).fill("Some text.")
    page.get_by_label("Ontology", exact=True).fill("@prefix : <broken")
    page.get_by_role("button", name="Start extraction").click()
    expect(page.locator("#run-error")).to_be_visible()
    assert httpx.get(f"{server.url}/v1/runs").json() == []

    page.get_by_role("button", name="Use the shipped samples").click()
    expect(page.get_by_label("Ontology", exact=True)).to_have_value(re.compile("owl:Ontology"))
    # Many small batches, so the run is still going when it is cancelled.
    text = "\n\n".join([(SAMPLES / "text.md").read_text()] * TEXT_COPIES)
    upload = tmp_path / "city.md"
    upload.write_text(text)
    page.get_by_label("Text file").set_input_files(upload)
    expect(page.get_by_label("Text", exact=True)).to_have_value(re.compile("Varnholm"))
    page.get_by_label("Chunk size (characters)").fill("1000")
    page.get_by_label("Overlap").fill("0")
    page.get_by_label("Chunks per batch").fill("1")
    page.get_by_role("button", name="Start extraction").click()
    expect(page.locator("#run-name")).to_have_text("city.md")
    run_id = page.url.rsplit("/", 1)[1]

    # The bar moves by itself: each batch committed is pushed by the run's event stream.
    wait_until(page, "document.querySelector('#run-progress').value > 0")
    wait_until(page, "Number(document.body.dataset.runEvents) >= 5")
    # Done/total, entities, the rate and the time left, as the batches come.
    expect(page.locator("#run-facts")).to_have_text(
        re.compile(r"\d+ of \d+ batches · \d+ entities · [\d.]+ batches/s · about \d+ s left")
    )
    # The cancel's answer is held back until the stream has shown the run stopped (the order
    # a quick NOTIFY makes possible): the older answer must not put "running" back.
    held: list[tuple[Route, APIResponse]] = []
    page.route("**/cancel", lambda route: held.append((route, route.fetch())))
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#run-status")).to_have_text("cancelled", timeout=60_000)
    route, answer = held[0]
    assert answer.json()["status"] == "running"
    route.fulfill(response=answer)
    wait_until(page, "document.body.dataset.cancelAnswered === 'true'")
    expect(page.locator("#run-status")).to_have_text("cancelled")
    page.unroute("**/cancel")
    stopped = httpx.get(f"{server.url}/v1/runs/{run_id}").json()
    assert 0 < stopped["batches_done"] < stopped["total_batches"]
    shot(page, backend, "run-cancelled")

    # A dropped stream (a server restarting, a network blip) is asked again, not given up:
    # this tab still follows the resume below.
    dropped: list[str] = []

    def drop(route: Route) -> None:
        dropped.append(route.request.url)
        route.abort()

    events_url = f"**/v1/runs/{run_id}/events*"
    page.route(events_url, drop)
    wait_for(page, lambda: len(dropped) >= 2, timeout_s=20)
    page.unroute(events_url)

    # Another tab resumes the run: this tab follows it to the end, and offers no Resume.
    other = page.context.new_page()
    other.goto(f"{server.url}/console/runs/{run_id}")
    expect(other.locator("#resume-run")).to_be_enabled()
    other.get_by_role("button", name="Resume").click()
    expect(other.locator("#run-status")).not_to_have_text("cancelled")
    other.close()
    expect(page.locator("#run-status")).to_have_text("completed", timeout=120_000)
    expect(page.locator("#resume-run")).to_be_disabled()
    expect(page.locator("#run-results")).to_be_visible()
    run = httpx.get(f"{server.url}/v1/runs/{run_id}").json()
    mentions = run["outputs"]["counts"]["mentions"]
    assert mentions > 0
    expect(page.locator("#source mark")).to_have_count(mentions)

    # The extraction view: a distinct colour per class; a class switched off in the legend
    # loses its highlights; a focused mention shows its entity, attributes and relations.
    legend = page.locator("#legend button.class-toggle")
    colours = legend.evaluate_all("bs => bs.map((b) => getComputedStyle(b).backgroundColor)")
    assert len(colours) > 1 and len(set(colours)) == len(colours), colours
    first_class = legend.first.get_attribute("data-class")
    of_class = page.locator(f'#source mark[data-class="{first_class}"]').count()
    legend.first.click()
    expect(legend.first).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#source mark.off")).to_have_count(of_class)
    legend.first.click()
    expect(page.locator("#source mark.off")).to_have_count(0)
    mark = page.locator("#source mark").first
    mark.focus()
    explained = page.locator("#mention-info")
    expect(explained).to_be_visible()
    expect(explained).to_contain_text(mark.get_attribute("data-entity") or "")
    related = page.evaluate(SHOWS_A_RELATION)
    if page.locator("#relations tbody tr").count():
        assert related, "no mention shows a relation, though the run found some"

    # Hundreds of updates and no polling of the run: it was read once on load and once for
    # its outputs; everything between came on its event stream, which a stopped run's page
    # asks again now and then (204 until a change follows), to see a resume made elsewhere.
    run_url = f"{server.url}/v1/runs/{run_id}"
    assert requests.count(f"GET {run_url}") == 2, [r for r in requests if run_id in r]
    assert requests.count(f"GET {run_url}/events") >= 2
    updates = int(page.evaluate("document.body.dataset.runEvents"))
    assert updates >= run["total_batches"]  # one event per batch, at least

    with page.expect_download() as info:
        page.get_by_role("button", name="Turtle").click()
    graph = Graph().parse(data=Path(info.value.path()).read_text(), format="turtle")
    assert len(graph) > 0
    expect(page.locator("#run-chunking")).to_contain_text("chunk size: 1000")
    shot(page, backend, "run")
    page.goto(server.url + "/console/runs")
    expect(page.locator("#run-table tbody tr")).to_have_count(1)
    shot(page, backend, "runs")
    # The status filter is the API's (the list is paged) and in the address.
    page.get_by_label("Status", exact=True).select_option("failed")
    expect(page).to_have_url(re.compile(r"\?status=failed$"))
    expect(page.locator("#run-nomatch")).to_be_visible()
    expect(page.locator("#run-table tbody tr")).to_have_count(0)
    page.reload()
    expect(page.locator("#run-nomatch")).to_be_visible()
    page.get_by_label("Status", exact=True).select_option("completed")
    expect(page.locator("#run-table tbody tr")).to_have_count(1)
    # So is the extractor filter (a run's kind); Back brings the previous choice back.
    chosen = run["extractor"].split()[0].removeprefix("genkeep-")
    unused = "llm" if chosen != "llm" else "builtin"
    page.get_by_label("Extractor").select_option(chosen)
    expect(page).to_have_url(re.compile(rf"\?status=completed&extractor={chosen}$"))
    expect(page.locator("#run-table tbody tr")).to_have_count(1)
    page.get_by_label("Extractor").select_option(unused)
    expect(page.locator("#run-nomatch")).to_be_visible()
    page.go_back()
    expect(page.get_by_label("Extractor")).to_have_value(chosen)
    expect(page.locator("#run-table tbody tr")).to_have_count(1)


# Focus each mention until one's entity shows a relation; that mention's text, or null.
SHOWS_A_RELATION = """() => {
    for (const mark of document.querySelectorAll("#source mark")) {
        mark.focus();
        if (document.querySelector("#mention-info li.relation")) return mark.textContent;
    }
    return null;
}"""


async def tasks_by_status(database: Database) -> dict[str, int]:
    async with database.reading() as session:
        rows = await session.execute(select(Task.status, func.count()).group_by(Task.status))
        return {status: count for status, count in rows.all()}


def test_a_job_submits_every_task_kind(
    servers: Callable[..., Server], page: Page, backend: str, db_url: str
) -> None:
    server = servers()
    made = httpx.post(f"{server.url}/v1/generate", json={"prompt": "Export me by prompt id"})
    assert made.status_code == 200, made.text
    page.goto(server.url + "/console/jobs")
    page.get_by_label("New job title").fill("Every kind")
    page.get_by_role("button", name="Create job").click()
    expect(page.locator("#job-title")).to_have_text("Every kind")
    tab(page, "Tasks")
    kinds = page.get_by_label("Task kind")
    # The kinds are the server's: built-in, and the test handlers of GENKEEP_TASK_MODULES.
    offered = kinds.locator("option").all_inner_texts()
    assert {"export", "generate", "extract", "stages"} <= set(offered)
    rows = page.locator("#tasks tbody tr")

    # A payload the API refuses: its sentence is shown, and no task is written.
    kinds.select_option("extract")
    page.get_by_label("Text to extract from").fill("A tram.")
    page.get_by_role("button", name="Submit task").click()
    expect(page.locator("#task-error")).to_contain_text("ontology")
    assert in_database(db_url, tasks_by_status) == {}

    kinds.select_option("generate")
    page.get_by_label("Prompt to generate").fill("A note written by a task")
    page.get_by_role("button", name="Submit task").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-status", "completed")
    prompt_link = rows.first.get_by_role("link", name="prompt, version 1")
    expect(prompt_link).to_be_visible()

    kinds.select_option("export")
    page.get_by_label("Source").select_option("prompt_id")
    page.get_by_label("Prompt or result id").fill(made.json()["prompt_id"])
    page.get_by_label("PDF").uncheck()
    page.get_by_label("Markdown").check()
    page.get_by_role("button", name="Submit task").click()
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-status", "completed")
    expect(page.locator(".artifact-kind h3")).to_have_text(["md"])

    kinds.select_option("stages")
    page.get_by_label("Payload (JSON)").fill('{"steps": 3}')
    page.get_by_role("button", name="Submit task").click()
    expect(rows).to_have_count(3)
    expect(rows.first).to_have_attribute("data-status", "completed")
    expect(rows.first.locator(".stage")).to_have_text("done")

    kinds.select_option("extract")
    page.get_by_role("button", name="Use the shipped samples").click()
    expect(page.get_by_label("Ontology to extract with")).to_have_value(re.compile("owl:Ontology"))
    page.get_by_label("Chunk size (characters)").fill("400")
    page.get_by_label("Chunk overlap").fill("0")
    page.get_by_label("Chunks per batch").fill("1")
    page.get_by_role("button", name="Submit task").click()
    expect(rows).to_have_count(4)
    expect(rows.first).to_have_attribute("data-status", "completed", timeout=60_000)
    expect(page.locator(".artifact-kind h3")).to_have_count(4)  # md, and the graph's three
    shot(page, backend, "job-tasks")
    task_id = rows.first.get_attribute("id").removeprefix("task-")  # type: ignore[union-attr]
    task = httpx.get(f"{server.url}/v1/tasks/{task_id}").json()
    assert (task["kind"], task["payload"]["chunk_size"], task["payload"]["batch_size"]) == (
        "extract",
        400,
        1,
    )

    rows.first.get_by_role("link", name="extraction run").click()
    expect(page.locator("#run-status")).to_have_text("completed")
    run = httpx.get(f"{server.url}/v1/runs/{task_id}").json()
    assert run["total_batches"] > 1
    expect(page.locator("#source mark")).to_have_count(run["outputs"]["counts"]["mentions"])

    page.get_by_role("link", name="Operations").click()
    expect(page.locator("body[data-ready]")).to_have_count(1)
    counted = in_database(db_url, tasks_by_status)  # at the source: rows in the tasks table
    assert counted == {"completed": 4}
    # The gauge counts unfinished tasks only: none is left.
    for status in ("queued", "running"):
        cell = page.locator(f'#queue tr[data-status="{status}"] td').last
        expect(cell).to_have_text(str(counted.get(status, 0)))


@BROWSER_ONLY  # the API's paging runs on both databases in tests/integration
def test_long_lists_are_paged(servers: Callable[..., Server], page: Page) -> None:
    server = servers()
    ontology = (SAMPLES / "ontology.ttl").read_text()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for n in range(21):  # one more than a page; n = 0 is the oldest
            assert client.post("/v1/generate", json={"prompt": f"prompt {n}"}).status_code == 200
            assert client.post("/v1/jobs", json={"title": f"job {n}"}).status_code == 201
            run = {"text": f"Tram {n}.", "ontology": ontology, "input_name": f"run-{n}.md"}
            assert client.post("/v1/runs", json=run).status_code == 202

    for path, table, oldest in (
        ("prompts", "#prompt-table", "prompt 0"),
        ("jobs", "#job-table", "job 0"),
        ("runs", "#run-table", "run-0.md"),
    ):
        page.goto(f"{server.url}/console/{path}")
        rows = page.locator(f"{table} tbody tr")
        expect(rows).to_have_count(20)
        expect(rows.filter(has_text=re.compile(rf"\b{oldest}\b"))).to_have_count(0)
        page.get_by_role("button", name="Next").click()
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text(oldest)
        expect(page.get_by_role("button", name="Next")).to_be_disabled()
        page.get_by_role("button", name=re.compile("Previous|First page")).click()
        expect(rows).to_have_count(20)


@BROWSER_ONLY
def test_pages_fit_a_narrow_window_name_every_field_and_work_by_keyboard(
    servers: Callable[..., Server], page: Page
) -> None:
    server = servers()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        prompt = client.post("/v1/generate", json={"prompt": "A narrow note " * 20}).json()
        job = client.post(
            "/v1/jobs", json={"title": "Narrow", "sections": [{"title": "S", "content": "c"}]}
        ).json()
        run = {
            "text": (SAMPLES / "text.md").read_text(),
            "ontology": (SAMPLES / "ontology.ttl").read_text(),
        }
        run_id = client.post("/v1/runs", json=run).json()["id"]
    page.set_viewport_size({"width": 390, "height": 844})  # a phone, or a narrow window
    unlabelled = """() => [...document.querySelectorAll("input, select, textarea, button")]
        .filter((e) => e.offsetParent !== null)
        .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label")
                       && !(e.tagName === "BUTTON" && e.textContent.trim()))
        .map((e) => e.outerHTML.slice(0, 80))"""
    for path, loaded in (
        ("", "#prompt"),
        ("/prompts", "#prompt-table tbody tr"),
        (f"/prompts/{prompt['prompt_id']}", "body[data-ready]"),
        ("/jobs", "#job-table tbody tr"),
        (f"/jobs/{job['id']}", "#events li"),
        ("/runs", "#run-table tbody tr"),
        (f"/runs/{run_id}", "#run-results:not([hidden])"),
        ("/ops", "body[data-ready]"),
    ):
        page.goto(f"{server.url}/console{path}")
        expect(page.locator(loaded).first).to_be_attached()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"/console{path} scrolls sideways by {overflow}px at 390px"
        assert page.evaluate(unlabelled) == [], f"/console{path} has fields without a name"

    # Generate without a mouse: Tab to the prompt, type, Tab on to the button, Enter.
    page.goto(f"{server.url}/console")
    for _ in range(30):
        if page.evaluate("document.activeElement.id") == "prompt":
            break
        page.keyboard.press("Tab")
    page.keyboard.type("Typed by keyboard alone")
    for _ in range(10):
        if page.evaluate("document.activeElement.id") == "generate":
            break
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#answer-outcome")).to_have_text("generated")


def test_stored_files_reach_the_browser_from_an_object_store_without_cors_rules(
    servers: Callable[..., Server], page: Page, azurite: str
) -> None:
    """Azurite, like Azure and S3, sends no CORS headers to a bucket without rules: a page
    that fetched a signed URL from the store could not read it. The console navigates to
    the URL to download, and reads a file it shows through the API."""
    server = servers(
        GENKEEP_BLOB_BACKEND="azure",
        GENKEEP_AZURE_CONNECTION_STRING=azurite,
        GENKEEP_AZURE_CONTAINER=f"console-{os.getpid()}-{time.monotonic_ns()}",
    )
    page.goto(server.url + "/console/runs")
    page.get_by_role("button", name="Use the shipped samples").click()
    expect(page.get_by_label("Ontology", exact=True)).to_have_value(re.compile("owl:Ontology"))
    page.get_by_role("button", name="Start extraction").click()
    expect(page.locator("#run-status")).to_have_text("completed", timeout=60_000)
    run_id = page.url.rsplit("/", 1)[1]
    run = httpx.get(f"{server.url}/v1/runs/{run_id}").json()
    expect(page.locator("#source mark")).to_have_count(run["outputs"]["counts"]["mentions"])

    signed = httpx.get(f"{server.url}/v1/runs/{run_id}/graph?format=turtle&deliver=url").json()
    assert not signed["url"].startswith(server.url)  # the store serves it, not genkeep
    with page.expect_download() as info:
        page.get_by_role("button", name="Turtle").click()
    assert len(Graph().parse(data=Path(info.value.path()).read_text(), format="turtle")) > 0

    with httpx.Client(base_url=server.url, timeout=60) as client:
        job = confirmed_job(client, "Café report")
    page.goto(f"{server.url}/console/jobs/{job['id']}?tab=tasks")
    page.get_by_label("Markdown").check()
    page.get_by_label("PDF").uncheck()
    page.get_by_role("button", name="Submit task").click()
    expect(page.locator("#tasks tbody tr").first).to_have_attribute("data-status", "completed")
    tab(page, "Artifacts")
    with page.expect_download() as info:
        page.locator("button.download").first.click()
    assert info.value.suggested_filename == "café-report.md"
    assert Path(info.value.path()).read_text().startswith("# Café report")


def _busy_events(job_id: str, count: int) -> Callable[[Database], Awaitable[None]]:
    """``count`` title changes of one job, written at the source (one HTTP call each would
    cost the test most of its time)."""

    async def write(database: Database) -> None:
        changes = [
            {
                "job_id": job_id,
                "owner_id": "default",
                "event_type": "job.updated",
                "payload": {"changes": {"title": {"from": f"Busy {n}", "to": f"Busy {n + 1}"}}},
                "trace_id": "0" * 32,
                "actor": "default",
                "created_at": utcnow(),
            }
            for n in range(count)
        ]
        async with database.transaction() as session:
            await session.execute(insert(JobEvent), changes)

    return write


def test_a_long_audit_log_and_the_tasks_at_its_end_are_all_shown(
    servers: Callable[..., Server], page: Page, db_url: str
) -> None:
    server = servers()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job = confirmed_job(client, "Busy")
        in_database(db_url, _busy_events(job["id"], 600))  # more than one page of the API (500)
        task = export_markdown(client, job["id"], "late")
    page.goto(f"{server.url}/console/jobs/{job['id']}")
    expect(page.locator(f"#task-{task['id']}")).to_have_attribute("data-status", "completed")
    events = page.locator("#events li")
    expect(events.filter(has_text="task.completed")).to_have_count(1)
    expect(events.first).to_contain_text("job.created")
    stored = _all_events(server.url, job["id"])
    assert len(stored) >= 1 + 600 + 3  # created, 600 updates, the task's queued/started/done
    expect(events).to_have_count(len(stored))
    assert events.last.inner_text().startswith(stored[-1]["event_type"])

    # An event that commits after later ones were read (PostgreSQL hands ids out at insert,
    # not at commit): made here by taking one out before the page read and putting it back.
    late = stored[-10]
    row = in_database(db_url, _take_out(late["id"]))
    page.reload()
    expect(events).to_have_count(len(stored) - 1)
    in_database(db_url, _put_back(row))
    tab(page, "Tasks")
    page.get_by_role("button", name="Submit task").click()  # the page reads the log again
    expect(events.filter(has_text="task.completed")).to_have_count(2)
    expect(events).to_have_count(len(_all_events(server.url, job["id"])))
    shown = [int(i) for i in events.evaluate_all("(items) => items.map((li) => li.dataset.id)")]
    assert late["id"] in shown and shown == sorted(shown)


def _take_out(event_id: int) -> Callable[[Database], Awaitable[dict[str, Any]]]:
    """Delete one event; its row, to put back."""

    async def take(database: Database) -> dict[str, Any]:
        async with database.transaction() as session:
            row = await session.get(JobEvent, event_id)
            assert row is not None
            kept = {c.key: getattr(row, c.key) for c in JobEvent.__table__.columns}
            await session.delete(row)
        return kept

    return take


def _put_back(row: dict[str, Any]) -> Callable[[Database], Awaitable[None]]:
    """Insert an event again, with its own (now lower than the newest) id."""

    async def put(database: Database) -> None:
        async with database.transaction() as session:
            await session.execute(insert(JobEvent), [row])

    return put


def _all_events(url: str, job_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while True:
        after = events[-1]["id"] if events else 0
        page = httpx.get(f"{url}/v1/jobs/{job_id}/events?after={after}&limit=500").json()
        events += page
        if len(page) < 500:
            return events


def _dialogs(page: Page, accept: bool) -> list[str]:
    """Record the type of every dialog the page opens, and answer it."""
    seen: list[str] = []

    def answer(dialog: Dialog) -> None:
        seen.append(dialog.type)
        dialog.accept() if accept else dialog.dismiss()

    page.on("dialog", answer)
    return seen


def test_unsaved_sections_are_neither_confirmed_away_nor_left_without_a_warning(
    servers: Callable[..., Server], page: Page
) -> None:
    server = servers()
    job = httpx.post(
        f"{server.url}/v1/jobs",
        json={"title": "Draft", "sections": [{"title": "S", "content": "old"}]},
    ).json()
    page.goto(f"{server.url}/console/jobs/{job['id']}?tab=sections")
    expect(page.locator("#job-version")).to_have_text("1")
    content = page.locator("#section-content-0")
    content.click()
    page.keyboard.type(" and new words")
    page.get_by_role("button", name="Confirm sections").click()
    expect(page.locator("#sections-error")).to_contain_text("unsaved")
    stored = httpx.get(f"{server.url}/v1/jobs/{job['id']}").json()
    assert stored["sections_confirmed"] is False
    expect(content).to_have_value(re.compile("and new words"))

    seen = _dialogs(page, accept=False)
    page.get_by_role("link", name="Prompts").click()
    wait_for(page, lambda: bool(seen))
    assert seen == ["beforeunload"]
    expect(page).to_have_url(f"{server.url}/console/jobs/{job['id']}?tab=sections")

    page.get_by_role("button", name="Save sections").click()
    expect(page.locator("#job-version")).to_have_text("2")
    page.get_by_role("button", name="Confirm sections").click()
    expect(page.locator("#gate-confirmed")).to_have_text("sections confirmed")
    page.get_by_role("link", name="Prompts").click()
    expect(page).to_have_url(f"{server.url}/console/prompts")
    assert seen == ["beforeunload"]  # saved: no second warning


async def _count_tasks(database: Database) -> int:
    async with database.reading() as session:
        return int((await session.execute(select(func.count()).select_from(Task))).scalar_one())


def test_a_double_click_submits_one_task_and_starts_one_run(
    servers: Callable[..., Server], page: Page, db_url: str
) -> None:
    server = servers()
    job = httpx.post(
        f"{server.url}/v1/jobs",
        json={"title": "Twice", "sections": [{"title": "S", "content": "c"}]},
    ).json()
    page.goto(f"{server.url}/console/jobs/{job['id']}?tab=tasks")
    expect(page.locator("#job-version")).to_have_text("1")
    page.get_by_label("Task kind").select_option("generate")
    page.get_by_label("Prompt to generate").fill("Only once, please")
    page.get_by_role("button", name="Submit task").dblclick()
    rows = page.locator("#tasks tbody tr")
    expect(rows.first).to_have_attribute("data-status", "completed")
    # A second click just after the first answer is still the same submission.
    page.get_by_role("button", name="Submit task").click()
    page.wait_for_timeout(300)
    assert in_database(db_url, _count_tasks) == 1
    expect(rows).to_have_count(1)

    page.goto(server.url + "/console/runs")
    page.get_by_label("Text", exact=True).fill("A tram.")
    page.get_by_label("Ontology", exact=True).fill((SAMPLES / "ontology.ttl").read_text())
    page.get_by_role("button", name="Start extraction").dblclick()
    expect(page.locator("#run-name")).to_be_visible()
    page.wait_for_timeout(300)
    assert len(httpx.get(f"{server.url}/v1/runs").json()) == 1


def test_task_payloads_are_checked_before_anything_is_queued(
    servers: Callable[..., Server], page: Page, db_url: str
) -> None:
    server = servers()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job = confirmed_job(client, "Checked")
    page.goto(f"{server.url}/console/jobs/{job['id']}?tab=tasks")
    expect(page.locator("#job-version")).not_to_have_text("")
    submit = page.get_by_role("button", name="Submit task")
    page.get_by_label("Source").select_option("result_id")
    submit.click()
    expect(page.locator("#task-error")).to_contain_text("Give the id of the result")
    page.get_by_label("Prompt or result id").fill("0" * 32)
    submit.click()
    expect(page.locator("#task-error")).to_contain_text("no result with the id")
    page.get_by_label("Task kind").select_option("generate")
    page.get_by_label("Prompt to generate").fill("   ")
    submit.click()
    expect(page.locator("#task-error")).to_contain_text("prompt to generate is empty")
    assert in_database(db_url, _count_tasks) == 0


@BROWSER_ONLY
def test_a_search_without_a_match_says_so(servers: Callable[..., Server], page: Page) -> None:
    server = servers()
    assert (
        httpx.post(f"{server.url}/v1/generate", json={"prompt": "About trams"}).status_code == 200
    )
    page.goto(server.url + "/console/prompts")
    expect(page.locator("body[data-loaded]")).to_have_count(1)
    expect(page.locator("#prompt-table tbody tr")).to_have_count(1)
    page.get_by_label("Search prompts").fill("zebras")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#prompt-nomatch")).to_contain_text("No prompt matches “zebras”")
    expect(page.locator("#prompt-empty")).to_be_hidden()


@BROWSER_ONLY
def test_words_typed_before_the_list_starts_are_searched_not_wiped(
    servers: Callable[..., Server], page: Page
) -> None:
    server = servers()
    for prompt in ("About trams", "About ferries"):
        assert httpx.post(f"{server.url}/v1/generate", json={"prompt": prompt}).status_code == 200
    held: list[Route] = []
    page.route("**/static/pages/prompts.js", lambda route: held.append(route))  # a slow load
    page.goto(server.url + "/console/prompts", wait_until="commit")
    wait_for(page, lambda: bool(held))
    expect(page.locator("#prompt-table tbody tr.placeholder")).to_have_count(1)
    page.get_by_label("Search prompts").fill("ferries")
    held[0].continue_()
    expect(page.locator("body[data-loaded]")).to_have_count(1)
    expect(page.get_by_label("Search prompts")).to_have_value("ferries")
    expect(page.locator("#prompt-table tbody tr")).to_have_count(1)
    expect(page.locator("#prompt-table tbody tr")).to_contain_text("About ferries")


@BROWSER_ONLY
def test_each_page_loads_its_own_modules_and_no_others(
    servers: Callable[..., Server], page: Page
) -> None:
    server = servers()
    loaded: set[str] = set()
    page.on(
        "request",
        lambda r: loaded.add(r.url.split("/console/static/")[1]) if "/static/" in r.url else None,
    )
    for path, name, ready in (
        ("/console/jobs", "jobs", "body[data-loaded]"),
        ("/console/runs/nope", "run", "#page-error"),
        ("/console/usage", "usage", "body[data-ready]"),
    ):
        loaded.clear()
        page.goto(server.url + path)
        expect(page.locator(ready)).to_have_count(1)
        assert loaded == closure(f"pages/{name}.js") | {"console.css"}, path


@BROWSER_ONLY
def test_unknown_pages_and_items_answer_not_found(
    servers: Callable[..., Server], page: Page
) -> None:
    server = servers()
    answer = page.goto(server.url + "/console/xyz")
    assert answer is not None and answer.status == 404
    assert answer.headers["content-type"].startswith("text/html")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.get_by_role("link", name="Generate")).to_be_visible()  # the console's frame
    for path in ("jobs/nope", f"jobs/{'0' * 32}", "runs/nope", "prompts/nope"):
        page.goto(f"{server.url}/console/{path}")
        expect(page.get_by_role("heading", name="Not found")).to_be_visible()
        expect(page.locator("main form")).to_have_count(0)
        expect(page.locator("main button")).to_have_count(0)


@BROWSER_ONLY
def test_regenerate_asks_first_and_a_diff_says_what_it_found(
    servers: Callable[..., Server], page: Page
) -> None:
    server = servers()
    made = httpx.post(f"{server.url}/v1/generate", json={"prompt": "Paid words"}).json()
    page.goto(f"{server.url}/console/prompts/{made['prompt_id']}")
    expect(page.locator("body[data-ready]")).to_have_count(1)
    seen: list[str] = []

    def refuse(dialog: Dialog) -> None:
        seen.append(dialog.type)
        dialog.dismiss()

    page.once("dialog", refuse)
    page.get_by_role("button", name="Regenerate").click()
    page.wait_for_timeout(500)
    assert seen == ["confirm"]
    assert httpx.get(f"{server.url}/v1/prompts/{made['prompt_id']}").json()["latest_version"] == 1
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Regenerate").click()
    expect(page.locator("#versions tbody tr")).to_have_count(2)
    expect(page.locator("body[data-ready]")).to_have_count(1)
    page.get_by_label("From version").select_option(index=1)

    # The same version on both sides: no difference, said in words.
    page.locator("#diff-form").get_by_role("button", name="Show diff").click()
    expect(page.locator("#diff")).to_have_text("No difference: the two versions are identical.")
    # A diff that cannot be read says so instead of nothing.
    page.route("**/v1/results/*", lambda route: route.abort())
    page.locator("#diff-form").get_by_role("button", name="Show diff").click()
    expect(page.locator("#diff-error")).to_contain_text("could not be reached")
    expect(page.locator("#diff")).to_be_empty()
    page.unroute("**/v1/results/*")


@BROWSER_ONLY
def test_focus_goes_to_the_answer_after_generate(
    servers: Callable[..., Server], page: Page
) -> None:
    server = servers()
    page.goto(server.url + "/console")
    page.get_by_label("Prompt").fill("Where does focus go?")
    page.get_by_label("Prompt").press("Tab")
    page.get_by_label("Profile").focus()
    page.get_by_role("button", name="Generate").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#answer-outcome")).to_have_text("generated")
    wait_until(page, "document.activeElement.id === 'answer'")
    page.keyboard.press("Tab")  # on from the answer, not from the top of the page
    assert page.evaluate("document.activeElement.id") == "answer-prompt"


@BROWSER_ONLY
def test_pages_send_a_strict_policy_that_blocks_injected_script(
    servers: Callable[..., Server], page: Page
) -> None:
    server = servers()
    made = httpx.post(f"{server.url}/v1/generate", json={"prompt": "Framed"}).json()
    for path, frames in (
        ("/console", "'none'"),
        ("/console/jobs", "'none'"),
        ("/console/xyz", "'none'"),
        ("/docs", "'none'"),
        ("/redoc", "'none'"),
        (f"/v1/results/{made['result_id']}/preview", "'self'"),
    ):
        headers = httpx.get(server.url + path).headers
        policy = headers.get("content-security-policy", "")
        assert (
            "script-src 'self'" in policy
            and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
        ), (path, policy)
        assert f"frame-ancestors {frames}" in policy, (path, policy)
        assert headers.get("x-content-type-options") == "nosniff", path
        assert headers.get("referrer-policy") == "no-referrer", path

    violations: list[str] = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.goto(server.url + "/console")
    expect(page.locator("#prompt")).to_be_visible()
    page.evaluate(
        """() => { const s = document.createElement('script');
                   s.textContent = 'window.injected = true'; document.body.append(s); }"""
    )
    page.wait_for_timeout(200)
    assert page.evaluate("window.injected === true") is False
    assert violations, "the browser reported no blocked script"
    # The docs still work under their policy: Swagger UI draws the API.
    page.goto(server.url + "/docs")
    expect(page.locator(".swagger-ui .info")).to_be_visible()


def test_validation_gaps_are_closed(servers: Callable[..., Server], page: Page) -> None:
    server = servers()
    job = httpx.post(f"{server.url}/v1/jobs", json={"title": "Empty"}).json()
    page.goto(f"{server.url}/console/jobs/{job['id']}?tab=sections")
    expect(page.locator("#job-version")).to_have_text("1")
    page.get_by_role("button", name="Confirm sections").click()
    expect(page.locator("#sections-error")).to_contain_text("no sections")
    page.get_by_label("Schema (JSON)").fill('{"type": "nonsense"}')
    page.get_by_role("button", name="Save schema").click()
    expect(page.locator("#schema-error")).to_contain_text("not a valid JSON Schema")
    stored = httpx.get(f"{server.url}/v1/jobs/{job['id']}").json()
    assert (stored["sections_confirmed"], stored["current_schema"]) == (False, None)
    page.get_by_label("Schema (JSON)").fill("")  # nothing unsaved left: no leave warning

    page.goto(server.url + "/console")
    page.get_by_label("Prompt").fill("Fresh enough?")
    page.get_by_label("Cache control").select_option("max-age")
    page.get_by_label("max-age (seconds)").fill("")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#prompt-error")).to_contain_text("Give max-age")
    assert httpx.get(f"{server.url}/v1/prompts").json() == []

    made = httpx.post(f"{server.url}/v1/generate", json={"prompt": "Unchanged"}).json()
    page.goto(f"{server.url}/console/prompts/{made['prompt_id']}")
    expect(page.locator("body[data-ready]")).to_have_count(1)
    page.get_by_role("button", name="Save as new version").click()
    expect(page.locator("#edit-error")).to_contain_text("Nothing changed")
    assert httpx.get(f"{server.url}/v1/prompts/{made['prompt_id']}").json()["latest_version"] == 1


@BROWSER_ONLY
def test_errors_are_in_plain_language(
    servers: Callable[..., Server], page: Page, tmp_path: Path
) -> None:
    server = servers()
    job = httpx.post(f"{server.url}/v1/jobs", json={"title": "Words"}).json()
    page.goto(f"{server.url}/console/jobs/{job['id']}?tab=sections")
    expect(page.locator("#job-version")).to_have_text("1")
    page.get_by_label("Schema (JSON)").fill('{"type": "nonsense"}')
    page.get_by_role("button", name="Save schema").click()
    error = page.locator("#schema-error")
    expect(error).to_contain_text("current_schema: not a valid JSON Schema")
    expect(error).not_to_contain_text("pydantic.dev")
    expect(error).not_to_contain_text("Value error")
    page.get_by_label("Schema (JSON)").fill("")

    png = tmp_path / "diagram.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    page.goto(server.url + "/console/runs")
    page.get_by_label("Ontology file (Turtle, RDF/XML, JSON-LD)").set_input_files(png)
    expect(page.locator("#run-error")).to_contain_text("diagram.png is not a text file")
    expect(page.get_by_label("Ontology", exact=True)).to_have_value("")


BROKEN_WORDS = """(selector) => {
    const broken = [];
    for (const cell of document.querySelectorAll(selector)) {
        const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            for (const match of node.textContent.matchAll(/[A-Za-z]{4,}/g)) {
                const range = document.createRange();
                range.setStart(node, match.index);
                range.setEnd(node, match.index + match[0].length);
                if (range.getClientRects().length > 1) broken.push(match[0]);
            }
        }
    }
    return broken;
}"""


@BROWSER_ONLY
def test_a_phone_can_retry_a_task_and_reads_whole_words(
    servers: Callable[..., Server], page: Page
) -> None:
    server = servers()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job = confirmed_job(client, "Phone")
        failed = client.post(
            f"/v1/jobs/{job['id']}/tasks",
            json={"kind": "export", "payload": {"formats": ["md"], "prompt_id": "0" * 32}},
            headers={"Idempotency-Key": "phone"},
        )
        assert failed.status_code in (200, 201, 202), failed.text
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{server.url}/console/jobs/{job['id']}?tab=tasks")
    row = page.locator("#tasks tbody tr").first
    expect(row).to_have_attribute("data-status", "failed")
    retry = row.get_by_role("button", name="Retry")
    expect(retry).to_be_visible()
    expect(row.locator("progress")).to_be_visible()
    retry.scroll_into_view_if_needed()
    assert retry.bounding_box()["x"] + retry.bounding_box()["width"] <= 390  # type: ignore[index]
    assert page.evaluate(BROKEN_WORDS, "#tasks th, #tasks td") == []
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0

    # Every table's rows are cards: no column is dropped, no word broken, nothing sideways.
    with httpx.Client(base_url=server.url, timeout=60) as client:
        prompt = client.post("/v1/generate", json={"prompt": "Cards on a phone"}).json()
        run = {"text": "A tram.", "ontology": (SAMPLES / "ontology.ttl").read_text()}
        assert client.post("/v1/runs", json=run).status_code == 202
    for path, table in (
        ("/prompts", "#prompt-table"),
        (f"/prompts/{prompt['prompt_id']}", "#versions"),
        ("/jobs", "#job-table"),
        ("/runs", "#run-table"),
        ("/ops", "#counters"),
    ):
        page.goto(f"{server.url}/console{path}")
        expect(page.locator(f"{table}:not([aria-busy])")).to_be_attached()
        dropped = page.evaluate(DROPPED_CELLS, f"{table} td")
        assert dropped == [], f"/console{path} hides {dropped} at 390px"
        assert page.evaluate(BROKEN_WORDS, f"{table} th, {table} td") == [], path
        assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0


# Cells with content that a narrow window does not show, by their column's name.
DROPPED_CELLS = """(selector) => [...document.querySelectorAll(selector)]
    .filter((cell) => cell.textContent.trim() && getComputedStyle(cell).display === "none")
    .map((cell) => cell.dataset.label || cell.cellIndex)"""


def test_search_and_page_are_in_the_address(servers: Callable[..., Server], page: Page) -> None:
    server = servers()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for n in range(21):
            assert client.post("/v1/generate", json={"prompt": f"tram {n}"}).status_code == 200
            assert client.post("/v1/jobs", json={"title": f"job {n}"}).status_code == 201
        assert client.post("/v1/generate", json={"prompt": "a bus"}).status_code == 200
    page.goto(server.url + "/console/prompts")
    rows = page.locator("#prompt-table tbody tr")
    expect(rows).to_have_count(20)
    page.get_by_label("Search prompts").fill("tram")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("button", name="Next").click()
    expect(rows).to_have_count(1)
    page.reload()
    expect(page.get_by_label("Search prompts")).to_have_value("tram")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("tram 0")
    page.go_back()
    expect(rows).to_have_count(20)
    expect(rows.filter(has_text="a bus")).to_have_count(0)
    page.go_back()
    expect(page.get_by_label("Search prompts")).to_have_value("")
    expect(rows).to_have_count(20)
    expect(rows.filter(has_text="a bus")).to_have_count(1)

    page.goto(server.url + "/console/jobs")
    jobs = page.locator("#job-table tbody tr")
    expect(jobs).to_have_count(20)
    page.get_by_role("button", name="Next").click()
    expect(jobs).to_have_count(1)
    page.reload()
    expect(jobs).to_have_count(1)
    expect(jobs.first).to_contain_text("job 0")


def test_the_audit_log_says_who_changed_what_and_links_tasks_and_artifacts(
    servers: Callable[..., Server], page: Page, backend: str
) -> None:
    server = servers(GENKEEP_TRACE_URL="http://traces.example/trace/{trace_id}")
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job = confirmed_job(client, "Audited")
        sections = [{"title": "One", "content": "a"}, {"title": "Two", "content": "b"}]
        changed = client.patch(
            f"/v1/jobs/{job['id']}", json={"title": "Audited twice", "sections": sections}
        )
        assert changed.status_code == 200, changed.text
        assert client.patch(f"/v1/jobs/{job['id']}", json={"sections_confirmed": True}).is_success
        failed = client.post(
            f"/v1/jobs/{job['id']}/tasks",
            json={"kind": "export", "payload": {"formats": ["md"], "prompt_id": "0" * 32}},
            headers={"Idempotency-Key": "audit-fails"},
        ).json()
        done = export_markdown(client, job["id"], "audit-exports")
    page.goto(f"{server.url}/console/jobs/{job['id']}")
    expect(page.locator(f"#task-{done['id']}")).to_have_attribute("data-status", "completed")
    expect(page.locator(f"#task-{failed['id']}")).to_have_attribute("data-status", "failed")
    # The overview tab first: the job's state at a glance, the other panels hidden.
    expect(page.get_by_role("tabpanel")).to_have_count(1)
    expect(page.get_by_role("tabpanel")).to_have_attribute("aria-labelledby", "tab-overview")
    expect(page.locator("#overview-tasks")).to_contain_text("2: ")
    expect(page.locator("#overview-tasks .pill[data-state=failed]")).to_have_text("1 failed")
    expect(page.locator("#overview-artifacts")).to_have_text("1")
    shot(page, backend, "job")

    # Tabs by keyboard: arrows move and show, Home and End go to the ends, focus follows.
    page.get_by_role("tab", name="Overview").focus()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Sections")).to_be_focused()
    expect(page.get_by_role("tab", name="Sections")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("tab", name="Overview")).to_have_attribute("tabindex", "-1")
    expect(page.locator("#panel-sections")).to_be_visible()
    page.keyboard.press("End")
    expect(page.get_by_role("tab", name="Audit log")).to_be_focused()
    page.keyboard.press("ArrowRight")  # past the last: the first
    expect(page.get_by_role("tab", name="Overview")).to_have_attribute("aria-selected", "true")
    page.keyboard.press("ArrowLeft")
    expect(page.get_by_role("tab", name="Audit log")).to_have_attribute("aria-selected", "true")
    expect(page).to_have_url(re.compile(r"\?tab=audit$"))
    events = page.locator("#events li")

    # What changed, by whom (the owner, not "api"), which task of which kind, its error.
    updated = events.filter(has_text="job.updated").first
    expect(updated).to_contain_text('title: "Audited" → "Audited twice"')
    expect(updated).to_contain_text("sections: 1 → 2 sections")
    expect(updated).to_contain_text("sections confirmed: true → false")
    expect(events.first).to_contain_text("by default")
    expect(events.filter(has_text=re.compile(r"by api\b"))).to_have_count(0)
    fail = events.filter(has_text="task.failed")
    expect(fail).to_contain_text(f"export task {failed['id'][:8]}")
    expect(fail).to_contain_text("error:")
    # Every event of the log is in it once, in order (none skipped by a late commit).
    stored = _all_events(server.url, job["id"])
    expect(events).to_have_count(len(stored))
    # The events name their task's kind and a failure its error, as stored.
    stored_fail = next(e for e in stored if e["event_type"] == "task.failed")
    assert stored_fail["payload"]["kind"] == "export"
    assert "not found" in stored_fail["payload"]["error"]
    # A completed export links to the artifact it made: the link opens the Artifacts tab.
    link = events.filter(has_text="task.completed").locator("a.artifact-link").first
    expect(link).to_have_text("md v1")
    target = link.get_attribute("href") or ""
    link.click()
    expect(page.get_by_role("tab", name="Artifacts")).to_have_attribute("aria-selected", "true")
    expect(page.locator(target)).to_be_focused()
    expect(page.locator(target)).to_contain_text("Download")
    # The tab is in the address: Back returns to the audit log, a reload keeps the tab.
    page.go_back()
    expect(page.get_by_role("tab", name="Audit log")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#panel-artifacts")).to_be_hidden()
    page.reload()
    expect(page.get_by_role("tab", name="Audit log")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#panel-audit")).to_be_visible()

    # Filters by status and kind are in the address: a reload or a shared link keeps them.
    tab(page, "Tasks")
    page.get_by_label("Status", exact=True).select_option("failed")
    expect(page).to_have_url(re.compile(r"\?tab=tasks&status=failed$"))
    rows = page.locator("#tasks tbody tr:visible")
    expect(rows).to_have_count(1)
    page.reload()
    expect(page.get_by_label("Status", exact=True)).to_have_value("failed")
    expect(page.locator(f"#task-{failed['id']}")).to_be_visible()
    expect(page.locator(f"#task-{done['id']}")).to_be_hidden()
    page.get_by_label("Kind", exact=True).select_option("generate")
    expect(page.locator("#tasks-filtered")).to_be_visible()
    # A shared link with a task filter and no tab opens the tasks; another tab chosen stays.
    page.goto(f"{server.url}/console/jobs/{job['id']}?status=failed")
    expect(page.get_by_role("tab", name="Tasks")).to_have_attribute("aria-selected", "true")
    tab(page, "Overview")
    page.reload()
    expect(page.get_by_role("tab", name="Overview")).to_have_attribute("aria-selected", "true")

    # The task's own page: status, attempts, error, payload, events, the trace linked.
    page.goto(f"{server.url}/console/tasks/{failed['id']}")
    expect(page.locator("body[data-ready]")).to_have_count(1)
    expect(page.locator("#task-status")).to_have_text("failed")
    expect(page.locator("#task-attempts")).to_contain_text("1 of at most")
    expect(page.locator("#task-error-text")).not_to_have_text("none")
    expect(page.locator("#task-payload")).to_contain_text("0" * 32)
    expect(page.locator("#task-events li").last).to_contain_text("task.failed")
    trace = httpx.get(f"{server.url}/v1/tasks/{failed['id']}").json()["trace_id"]
    expect(page.locator("#task-trace a")).to_have_attribute(
        "href", f"http://traces.example/trace/{trace}"
    )
    page.goto(f"{server.url}/console/tasks/{done['id']}")
    expect(page.locator("#task-artifacts li")).to_have_count(1)
    expect(page.locator("#task-worker")).not_to_have_text("not claimed yet")
    shot(page, backend, "task")


@BROWSER_ONLY
def test_placeholders_show_and_buttons_wait_until_the_data_arrives(
    servers: Callable[..., Server], page: Page
) -> None:
    server = servers()
    job = httpx.post(f"{server.url}/v1/jobs", json={"title": "Slow"}).json()
    held: list[Route] = []
    the_job = re.compile(r".*/v1/jobs/[0-9a-f-]+$")
    page.route(the_job, lambda route: held.append(route))
    page.goto(f"{server.url}/console/jobs/{job['id']}")
    while not held:
        page.wait_for_timeout(20)
    expect(page.locator("#tasks tr.placeholder")).to_contain_text("Loading")
    expect(page.locator("#job-title")).to_contain_text("Loading")
    for button in ("#submit-task", "#save-sections", "#confirm-sections", "#add-section"):
        expect(page.locator(button)).to_be_disabled()
    expect(page.locator("#tasks-empty")).to_be_hidden()
    held[0].continue_()
    page.unroute(the_job)
    expect(page.locator("#submit-task")).to_be_enabled()
    expect(page.locator("#tasks tr.placeholder")).to_have_count(0)
    expect(page.locator("#overview-tasks")).to_have_text("none yet")
    tab(page, "Tasks")
    expect(page.locator("#tasks-empty")).to_be_visible()
    tab(page, "Artifacts")
    expect(page.locator("#artifacts-empty")).to_be_visible()

    held.clear()
    page.route("**/v1/prompts?*", lambda route: held.append(route))
    page.goto(f"{server.url}/console/prompts")
    while not held:
        page.wait_for_timeout(20)
    expect(page.locator("#prompt-table tr.placeholder")).to_be_visible()
    expect(page.locator("#prompt-empty")).to_be_hidden()
    held[0].continue_()
    expect(page.locator("#prompt-empty")).to_be_visible()
    expect(page.locator("#prompt-table tr.placeholder")).to_have_count(0)
