"""A run's input read in pieces, on both databases: stored from a file without loading it,
executed from a spooled copy of its blob, with the bytes of a run from the text in memory."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from genkeep.errors import ManifestMismatch
from genkeep.extract.runner import ExtractionRunner
from genkeep.extract.service import ExtractionService, RunRequest
from genkeep.extract.source import InputFile
from genkeep.services import Services
from tests.integration.test_runs import (
    ONTOLOGY,
    OWNER,
    SMALL,
    TEXT,
    graph_of,
    run_to_end,
    service_for,
    services,
)

__all__ = ["services"]  # the fixture, shared with test_runs

# Past ASCII: a batch's resume point is a byte offset into the spooled copy, not a character's.
BODY = TEXT + "\n\nNaïve “quoted” words about the tram of 東京.\n"


def request_of(service: ExtractionService, text: str, input_file: InputFile | None) -> RunRequest:
    params = {"chunk_size": SMALL.size, "overlap": SMALL.overlap, "batch_size": SMALL.batch_size}
    return service.setup.request(
        text, "input.md", ONTOLOGY, "o.ttl", limit_input=False, input_file=input_file, **params
    )


async def test_a_run_from_a_file_matches_a_run_from_the_text(
    services: Services, tmp_path: Path
) -> None:
    path = tmp_path / "input.md"
    path.write_text(BODY, encoding="utf-8")
    service = service_for(services)
    from_file = await service.create(
        OWNER, request_of(service, "", InputFile.scan(path)), "builtin"
    )
    assert from_file.input_chars == len(BODY)
    assert await run_to_end(services, service, from_file.id) == "completed"

    in_memory = await service.create(OWNER, request_of(service, BODY, None), "builtin")
    assert in_memory.input_sha256 == from_file.input_sha256
    found = await services.runs.require(OWNER, in_memory.id)
    inputs = await service.inputs(found, text=BODY)
    runner = ExtractionRunner(services.runs, services.blobs, lease_s=5)
    assert await runner.execute(found, inputs, asyncio.Event()) == "completed"

    assert await graph_of(services, from_file.id) == await graph_of(services, in_memory.id)
    spans = []
    for run in (from_file, in_memory):
        done = await services.runs.require(OWNER, run.id)
        assert done.outputs is not None and done.total_batches >= 5
        spans.append(await services.blobs.get(done.outputs["jsonl"]["key"]))
    assert spans[0] == spans[1]
    # A mention past the non-ASCII text, its offsets in characters of the text.
    last = json.loads(spans[0].splitlines()[-1])
    assert last["start"] > BODY.index("Naïve")
    assert BODY[last["start"] : last["end"]] == last["surface"]


async def test_a_changed_file_or_blob_is_refused(services: Services, tmp_path: Path) -> None:
    path = tmp_path / "input.md"
    path.write_text(BODY, encoding="utf-8")
    service = service_for(services)
    request = service.setup.request(
        "", "input.md", ONTOLOGY, "o.ttl", limit_input=False, input_file=InputFile.scan(path)
    )
    run = await service.create(OWNER, request, "builtin")
    path.write_text(BODY + "more", encoding="utf-8")
    with pytest.raises(ManifestMismatch, match="input differs"):
        await service.inputs(run, input_file=InputFile.scan(path))
    await services.blobs.put(run.input_blob_key, b"tampered", content_type="text/plain")
    with pytest.raises(ManifestMismatch, match="input differs"):
        await service.inputs(run)
