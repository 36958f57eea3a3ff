"""One trace from request to model (I18), exported over OTLP/HTTP to a real receiver.

Per backend one ``genkeep serve`` (no in-process worker), one fake upstream and one receiver
serve every test of the module; tasks are run by separate ``genkeep worker`` processes. What
is asserted is what the receiver decoded from the wire, and what the database stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from genkeep.db.models import JobEvent, Task
from tests.conftest import BACKENDS, _admin, admin_url, process_env
from tests.e2e.test_extract_llm import llm_env
from tests.e2e.test_workers import rows, wait_for
from tests.support.fake_openai import FakeOpenAI, extraction_answer, ok
from tests.support.otlp import OtlpReceiver, ReceivedSpan
from tests.support.postgres import dsn
from tests.support.server import Server, WorkerProcess, genkeep_command, pid_of

pytestmark = pytest.mark.e2e

MODEL = "gpt-trace-mini"
FAST_LEASE = {"GENKEEP_TASK_LEASE_S": "1", "GENKEEP_TASK_POLL_S": "0.2"}
# One batch at a time in each process (test_extract_fleet's FLEET, its lease left alone).
ONE_BATCH_EACH = {
    "GENKEEP_EXTRACT_POLL_S": "0.05",
    "GENKEEP_EXTRACT_CONCURRENCY": "1",
    "GENKEEP_EXTRACT_FLEET_SLOTS": "1",
}
SAMPLES = Path(__file__).resolve().parents[2] / "src" / "genkeep" / "extract" / "samples"


@dataclass
class Traced:
    server: Server
    receiver: OtlpReceiver
    upstream: FakeOpenAI
    db_url: str
    env: dict[str, str]
    logs: Path


@pytest.fixture(scope="module", params=BACKENDS)
def traced(
    request: pytest.FixtureRequest,
    templates: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Traced]:
    tmp = tmp_path_factory.mktemp(f"tracing-{request.param}")
    name = f"genkeep_trace_{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        shutil.copyfile(templates["sqlite"], tmp / "genkeep.db")
        db_url = f"sqlite:///{tmp / 'genkeep.db'}"
    else:
        asyncio.run(_admin(f'CREATE DATABASE "{name}" TEMPLATE "{templates["postgresql"]}"'))
        db_url = dsn(admin_url(), name)
    with OtlpReceiver() as receiver, FakeOpenAI() as upstream:
        env = {
            **process_env(db_url, tmp),
            **receiver.env(),
            "OTEL_SERVICE_NAME": "genkeep-test",
            "GENKEEP_BLOB_DIR": str(tmp / "blobs"),
            "GENKEEP_PROFILES": json.dumps(
                {"default": {}, MODEL: {"backend": "openai", "model": MODEL}}
            ),
            "GENKEEP_OPENAI_BASE_URL": upstream.base_url,
            "GENKEEP_OPENAI_API_KEY": "sk-upstream",
            "GENKEEP_OPENAI_MAX_RETRIES": "0",
            "GENKEEP_SERVE_WORKER": "false",
        }
        server = Server(env, tmp / "server.log")
        try:
            server.start()
            yield Traced(server, receiver, upstream, db_url, env, tmp)
        finally:
            server.stop()
            print(server.log()[-4000:])
            if request.param == "postgresql":
                asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def traceparent() -> tuple[str, str, str]:
    trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def one(spans: list[ReceivedSpan], name: str, **attributes: Any) -> ReceivedSpan:
    found = [
        s
        for s in spans
        if s.name == name and all(s.attributes.get(k) == v for k, v in attributes.items())
    ]
    assert len(found) == 1, f"{name}: {[(s.name, s.attributes) for s in spans]}"
    return found[0]


def whole(receiver: OtlpReceiver, trace_id: str, *names: str) -> list[ReceivedSpan]:
    """The spans of a trace, once every span named has arrived (each process exports in
    batches, the outermost span last)."""
    receiver.wait_for(lambda s: set(names) <= {x.name for x in s if x.trace_id == trace_id})
    return receiver.trace(trace_id)


def chat(content: str) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], "temperature": 0.2}


async def test_a_chat_miss_is_server_generation_client_and_a_hit_has_no_client(
    traced: Traced,
) -> None:
    miss_trace, caller_span, header = traceparent()
    hit_trace, _, hit_header = traceparent()
    question = f"What is tracing? {uuid.uuid4()}"
    # Cut short: the finish reason the span reports is the upstream's, not the default.
    traced.upstream.plan(ok(finish_reason="length"))
    async with httpx.AsyncClient(base_url=traced.server.url, timeout=30) as client:
        miss = await client.post(
            "/v1/chat/completions", json=chat(question), headers={"traceparent": header}
        )
        hit = await client.post(
            "/v1/chat/completions", json=chat(question), headers={"traceparent": hit_header}
        )
        plain = await client.post("/v1/chat/completions", json=chat(question))
    assert miss.status_code == hit.status_code == plain.status_code == 200
    assert miss.headers["x-request-id"] == miss_trace
    assert hit.headers["x-request-id"] == hit_trace
    assert traced.upstream.calls == 1  # counted at the source: one upstream call

    receiver = traced.receiver
    spans = whole(
        receiver, miss_trace, "POST /v1/chat/completions", "genkeep.generate", f"chat {MODEL}"
    )
    server = one(spans, "POST /v1/chat/completions")
    assert server.kind == "SERVER" and server.parent_id == caller_span
    assert server.service == "genkeep-test"
    assert server.attributes["http.route"] == "/v1/chat/completions"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["genkeep.cache.hit"] is False
    generation = one(spans, "genkeep.generate")
    assert generation.parent_id == server.span_id
    assert generation.attributes["genkeep.cache.hit"] is False
    assert generation.attributes["genkeep.coalesced"] is False
    result_id = json.loads(miss.text)["id"]
    client_span = one(spans, f"chat {MODEL}")
    assert client_span.kind == "CLIENT" and client_span.parent_id == generation.span_id
    attributes = client_span.attributes
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == MODEL
    assert attributes["gen_ai.request.temperature"] == 0.2
    assert attributes["gen_ai.usage.input_tokens"] > 0
    assert attributes["gen_ai.usage.output_tokens"] > 0
    assert attributes["gen_ai.response.finish_reasons"] == ["length"]
    assert attributes["gen_ai.response.model"] == MODEL
    assert "gen_ai.input.messages" not in attributes  # content only when opted in
    # The upstream HTTP request (httpx's instrumentation) is the model call's child, and the
    # upstream was sent the trace.
    [http] = [s for s in spans if s.parent_id == client_span.span_id]
    assert http.kind == "CLIENT" and http.name.startswith("POST")
    [sent] = traced.upstream.requests
    assert sent.headers["traceparent"].split("-")[1] == miss_trace
    assert result_id

    hit_spans = whole(receiver, hit_trace, "POST /v1/chat/completions")
    # A hit is told on the request's own span: no generation, no model call under it.
    [answered] = hit_spans
    assert answered.kind == "SERVER"
    assert answered.attributes["genkeep.cache.hit"] is True
    assert answered.attributes["genkeep.coalesced"] is False
    assert answered.attributes["genkeep.result.id"] == generation.attributes["genkeep.result.id"]
    # Without a traceparent, the answer's id is the new trace's.
    plain_id = plain.headers["x-request-id"]
    receiver.wait_for(lambda s: any(x.trace_id == plain_id and x.kind == "SERVER" for x in s))

    async with httpx.AsyncClient(base_url=traced.server.url, timeout=30) as client:
        metrics = (await client.get("/metrics")).text
    assert (
        f'gen_ai_client_token_usage_bucket{{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="{MODEL}",gen_ai_token_type="input"'
        in metrics
    )
    assert "gen_ai_client_operation_duration_seconds_bucket{" in metrics
    # And over OTLP, beside the spans.
    receiver.wait_for(lambda _: "gen_ai.client.token.usage" in receiver.received.metric_names)
    assert "gen_ai.client.operation.duration" in receiver.received.metric_names


async def test_a_task_killed_mid_run_continues_its_trace_in_another_worker(
    traced: Traced,
) -> None:
    trace_id, _, header = traceparent()
    async with httpx.AsyncClient(base_url=traced.server.url, timeout=30) as client:
        created = await client.post("/v1/jobs", json={"title": "traced"})
        job, job_trace = created.json()["id"], created.headers["x-request-id"]
        submitted = await client.post(
            f"/v1/jobs/{job}/tasks",
            json={"kind": "sleep", "payload": {"steps": 15, "step_s": 0.1}},
            headers={"Idempotency-Key": f"traced-{uuid.uuid4()}", "traceparent": header},
        )
    assert submitted.status_code == 201
    assert submitted.headers["x-request-id"] == trace_id
    task_id = submitted.json()["id"]
    env = {**traced.env, **FAST_LEASE}
    # Two workers started together (one start-up to wait for): the one that claims the task
    # is killed, the other takes it over once the lease expires.
    started = [WorkerProcess(env, traced.logs / f"worker{i}.log").start() for i in range(2)]
    try:
        # The first attempt stored its span before it worked: that is what it is killed with.
        [(first_attempt, holder)] = await wait_for(
            traced.db_url,
            select(Task.attempt_context, Task.worker_id).where(Task.id == task_id),
            lambda v: v[0][0] is not None,
            seconds=30,
        )
        [doomed] = [w for w in started if w.pid == pid_of(str(holder))]
        [survivor] = [w for w in started if w is not doomed]
        doomed.signal(signal.SIGKILL)
        await wait_for(
            traced.db_url,
            select(Task.status).where(Task.id == task_id),
            lambda v: v == [("completed",)],
            seconds=60,
        )
    finally:
        for worker in started:
            worker.stop()  # SIGTERM: the survivor flushes its spans on the way out

    names = ("POST /v1/jobs/{job_id}/tasks", "send tasks", "process tasks", "claim tasks")
    spans = whole(traced.receiver, trace_id, *names, "blob put")
    server = one(spans, "POST /v1/jobs/{job_id}/tasks")
    producer = one(spans, "send tasks")
    assert producer.kind == "PRODUCER" and producer.parent_id == server.span_id
    assert producer.attributes["messaging.message.id"] == task_id
    consumer = one(spans, "process tasks", **{"genkeep.attempt": 2})
    assert consumer.kind == "CONSUMER" and consumer.parent_id == producer.span_id
    assert consumer.attributes["genkeep.worker.id"].split(":")[1] == str(survivor.pid)
    failed_span = first_attempt.split("-")[2]
    assert [(link.trace_id, link.span_id) for link in consumer.links] == [(trace_id, failed_span)]
    # Each attempt's claim is its child; the killed attempt's, if it was exported before the
    # kill, is under the span the survivor links to.
    claims = {s.parent_id for s in spans if s.name == "claim tasks"}
    assert consumer.span_id in claims and claims <= {consumer.span_id, failed_span}
    assert one(spans, "blob put").parent_id == consumer.span_id
    # The audit log's trace id is the exported one, for every event of the task.
    events = await rows(
        traced.db_url, select(JobEvent.event_type, JobEvent.trace_id).where(JobEvent.job_id == job)
    )
    assert {event for event, _ in events} >= {"job.created", "task.queued", "task.completed"}
    assert {trace for event, trace in events if event.startswith("task.")} == {trace_id}
    assert {trace for event, trace in events if event == "job.created"} == {job_trace}
    whole(traced.receiver, job_trace, "POST /v1/jobs")  # exported under the same id


async def test_an_extraction_runs_batches_in_the_trace_that_started_it(traced: Traced) -> None:
    trace_id, _, header = traceparent()
    body = {
        "text": (SAMPLES / "text.md").read_text(),
        "ontology": (SAMPLES / "ontology.ttl").read_text(),
        "chunk_size": 400,
        "overlap": 0,
        "batch_size": 1,
    }
    async with httpx.AsyncClient(base_url=traced.server.url, timeout=30) as client:
        created = await client.post("/v1/runs", json=body, headers={"traceparent": header})
        assert created.status_code == 202
        run_id = created.json()["id"]
        for _ in range(300):
            run = (await client.get(f"/v1/runs/{run_id}")).json()
            if run["status"] not in ("pending", "running"):
                break
            await asyncio.sleep(0.1)
    assert run["status"] == "completed" and run["total_batches"] >= 3
    names = ("POST /v1/runs", "send runs", "process runs", "extract batch", "merge run outputs")
    spans = whole(traced.receiver, trace_id, *names)
    producer = one(spans, "send runs")
    assert producer.parent_id == one(spans, "POST /v1/runs").span_id
    consumer = one(spans, "process runs")
    assert consumer.kind == "CONSUMER" and consumer.parent_id == producer.span_id
    batches = [s for s in spans if s.name == "extract batch"]
    assert sorted(s.attributes["genkeep.batch.index"] for s in batches) == list(
        range(run["total_batches"])
    )
    assert {s.parent_id for s in batches} == {consumer.span_id}
    assert one(spans, "merge run outputs").parent_id == consumer.span_id
    assert [s for s in spans if s.name == "blob put"]  # the input and the outputs


async def test_a_request_waiting_on_another_processs_generation_links_to_it(
    traced: Traced,
) -> None:
    # The server leads (its model call held at the upstream); a worker's generate task for
    # the same prompt waits for it through the database, and its flight links to the leader.
    prompt = f"Coalesced across processes {uuid.uuid4()}"
    body = {"prompt": prompt, "profile": MODEL}
    lead_trace, _, lead_header = traceparent()
    wait_trace, _, wait_header = traceparent()
    upstream = traced.upstream
    upstream.hold_after(upstream.calls)
    worker = WorkerProcess(traced.env, traced.logs / "coalesced-worker.log").start()
    try:
        async with httpx.AsyncClient(base_url=traced.server.url, timeout=60) as client:
            led = asyncio.create_task(
                client.post("/v1/generate", json=body, headers={"traceparent": lead_header})
            )
            for _ in range(600):
                if upstream.held:
                    break
                await asyncio.sleep(0.05)
            assert upstream.held == 1
            job = (await client.post("/v1/jobs", json={"title": "coalesced"})).json()["id"]
            submitted = await client.post(
                f"/v1/jobs/{job}/tasks",
                json={"kind": "generate", "payload": body},
                headers={
                    "Idempotency-Key": f"coalesced-{uuid.uuid4()}",
                    "traceparent": wait_header,
                },
            )
            task_id = submitted.json()["id"]
            await wait_for(
                traced.db_url,
                select(Task.progress).where(Task.id == task_id),
                lambda v: bool(v) and v[0][0] > 0,  # generating: its read comes next
                seconds=30,
            )
            await asyncio.sleep(1)  # its first read finds the claim: it waits (polls)
            upstream.release()
            assert (await led).status_code == 200
            await wait_for(
                traced.db_url,
                select(Task.status, Task.result).where(Task.id == task_id),
                lambda v: v[0][0] == "completed",
                seconds=30,
            )
    finally:
        upstream.release()  # and every later call is answered at once
        worker.stop()  # SIGTERM: it flushes its spans on the way out
    assert sum(prompt in sent for sent in upstream.prompts()) == 1  # one call for both
    leader = one(whole(traced.receiver, lead_trace, "genkeep.generate"), "genkeep.generate")
    spans = whole(traced.receiver, wait_trace, "process tasks", "genkeep.generate")
    waiter = one(spans, "genkeep.generate")
    assert waiter.attributes["genkeep.coalesced"] is True, "the worker did not wait"
    assert waiter.parent_id == one(spans, "process tasks").span_id
    assert [(link.trace_id, link.span_id) for link in waiter.links] == [
        (lead_trace, leader.span_id)
    ]
    assert waiter.links[0].attributes == {"genkeep.link": "leader generation"}
    assert not [s for s in spans if s.name == f"chat {MODEL}"]  # no model call of its own


def test_the_cli_extract_with_a_helper_process_is_one_trace(traced: Traced, tmp_path: Path) -> None:
    # From a folder outside the checkout, as a user runs it, with a helper process working
    # batches beside it; its own service name tells its spans from the server's.
    service = f"genkeep-cli-{uuid.uuid4().hex[:8]}"
    here = tmp_path / "elsewhere"
    here.mkdir()
    (here / "notes.md").write_text((SAMPLES / "text.md").read_text())
    args = ["extract", "notes.md", "--ontology", str(SAMPLES / "ontology.ttl")]
    args += ["--chunk-size", "1000", "--batch-size", "1", "-o", "graph.ttl"]
    args += ["--extractor", "llm", "--workers", "2"]
    with FakeOpenAI(answer=extraction_answer) as model:
        model.hold_after(0)  # each process holds a batch at the model: both did one
        env = {**traced.env, **llm_env(model), **ONE_BATCH_EACH, "OTEL_SERVICE_NAME": service}
        log = tmp_path / "extract.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [*genkeep_command(), *args],
                env={**os.environ, **env},
                cwd=here,
                stdout=subprocess.DEVNULL,
                stderr=sink,
                start_new_session=True,  # its helper goes with it, whatever the test's end
            )
        try:
            deadline = time.monotonic() + 60
            while model.held < 2:
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.02)
            model.release()
            assert process.wait(timeout=120) == 0, log.read_text()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    assert (here / "graph.ttl").read_text().startswith("@prefix")

    # Each process flushed before it exited: the helper's spans are in once its batches are.
    spans = traced.receiver.wait_for(
        lambda got: len({s.resource_pid for s in got if s.service == service}) == 2
    )
    spans = [s for s in spans if s.service == service]
    assert len({s.trace_id for s in spans}) == 1
    [root] = [s for s in spans if not s.parent_id]
    assert root.name == "genkeep extract"
    by_id = {s.span_id: s for s in spans}

    def chain(span: ReceivedSpan) -> tuple[str, ...]:
        names = [span.name]
        while span.parent_id:
            span = by_id[span.parent_id]  # a parent never exported would be a KeyError
            names.append(span.name)
        return tuple(names)

    assert {chain(s)[-1] for s in spans} == {"genkeep extract"}
    batches = [s for s in spans if s.name == "extract batch"]
    indices = sorted(s.attributes["genkeep.batch.index"] for s in batches)
    assert len(indices) >= 3 and indices == list(range(len(indices)))
    # The executing process's batches are its CONSUMER span's; the helper's continue the
    # run's stored context (its PRODUCER span).
    ran = {s.resource_pid: chain(s) for s in batches}
    assert ran[process.pid] == ("extract batch", "process runs", "send runs", "genkeep extract")
    [helper] = set(ran) - {process.pid}
    assert ran[helper] == ("extract batch", "send runs", "genkeep extract")
    # Each batch's model calls are its CLIENT children (the GenAI span, then httpx's).
    calls = [s for s in spans if s.name == "chat gpt-fake-extract"]
    assert calls and {by_id[s.parent_id].name for s in calls} == {"extract batch"}
    # The input file is stored as the run is made; the outputs as they are merged.
    stored = Counter(chain(s)[1:3] for s in spans if s.name == "blob put_file")
    assert stored[("genkeep extract",)] == 1
    assert set(stored) == {("genkeep extract",), ("merge run outputs", "process runs")}
