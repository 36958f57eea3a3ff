"""Runs with the ner extractor on SQLite and PostgreSQL: the mapping a run starts with is
kept with it and used on resume, whatever the process's mapping file says by then; and a
graph whose open properties no word supports does not conform."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from genkeep.config import Settings
from genkeep.extract.builtin import BuiltinExtractor
from genkeep.extract.model import ChunkParams, Extractor
from genkeep.extract.ner.extractor import NerExtractor
from genkeep.extract.ontology import load_ontology
from genkeep.extract.service import ExtractionService, RunRequest
from genkeep.services import Services, close_services, open_services
from tests.integration.test_runs import graph_of, run_to_end

FOAF_SET = Path(__file__).resolve().parents[2] / "benchmarks" / "eval" / "foaf"
ONTOLOGY = (FOAF_SET / "ontology.ttl").read_bytes()
TEXT = (FOAF_SET / "text.md").read_text()
OWNER = "alice"
FOAF = "http://xmlns.com/foaf/0.1/"
PARAMS = ChunkParams(size=800, overlap=60, batch_size=1)


@pytest.fixture
async def services(settings: Settings, tmp_path: Path) -> AsyncIterator[Services]:
    opened = await open_services(settings.model_copy(update={"blob_dir": tmp_path / "blobs"}))
    try:
        yield opened
    finally:
        await close_services(opened)


def service_for(services: Services, extractor: Extractor, name: str) -> ExtractionService:
    return ExtractionService(
        services.runs, services.blobs, {name: extractor, extractor.name: extractor},
        services.extraction.setup,
    )  # fmt: skip


async def test_a_resume_maps_as_the_run_started(services: Services) -> None:
    started = service_for(services, NerExtractor(), "ner")
    request = RunRequest(TEXT, "text.md", ONTOLOGY, "foaf.ttl", PARAMS)
    whole = await started.create(OWNER, request, "ner")
    assert await run_to_end(services, started, whole.id) == "completed"
    assert whole.extractor_name == "genkeep-ner" and whole.extractor_version.startswith("2.")
    pinned = f"owners/{OWNER}/extractor-pins/genkeep-ner-{whole.extractor_version}.json"
    record = json.loads(await services.blobs.get(pinned))
    assert record["mapping"]["types"]["PERSON"] == FOAF + "Person"
    assert record["pipeline"] == "en_core_web_sm-3.8.0" or record["pipeline"].endswith("-3.8.0")

    stopped = await started.create(OWNER, request, "ner")
    assert stopped.extractor_version == whole.extractor_version
    assert await run_to_end(services, started, stopped.id, stop_after=2) == "cancelled"
    # The process restarts with a mapping file that makes people groups: the run resumes
    # with the mapping it started with, and writes the same graph as the uninterrupted run.
    changed = service_for(services, NerExtractor(overrides={"PERSON": FOAF + "Group"}), "ner")
    found = await services.runs.require(OWNER, stopped.id)
    inputs = await changed.inputs(found)
    ontology = load_ontology(ONTOLOGY, name="foaf.ttl")
    assert isinstance(inputs.extractor, NerExtractor)
    assert inputs.extractor.mapping_for(ontology).class_for("PERSON") == FOAF + "Person"
    assert await run_to_end(services, changed, stopped.id) == "completed"
    assert await graph_of(services, stopped.id) == await graph_of(services, whole.id)
    done = await services.runs.require(OWNER, stopped.id)
    assert done.outputs is not None and done.outputs["validation"]["conforms"] is True
    # A new run under the new mapping is another mapping, and records it.
    regrouped = await changed.create(OWNER, request, "ner")
    assert regrouped.extractor_version != whole.extractor_version


async def test_open_properties_without_a_cue_do_not_conform(services: Services) -> None:
    service = service_for(services, BuiltinExtractor(), "builtin")
    text = "The project had a person and a group. A person leads the project."
    run = await service.create(
        OWNER, RunRequest(text, "t.md", ONTOLOGY, "foaf.ttl", ChunkParams()), "builtin"
    )
    assert await run_to_end(services, service, run.id) == "completed"
    done = await services.runs.require(OWNER, run.id)
    assert done.outputs is not None
    validation = done.outputs["validation"]
    assert validation["conforms"] is False
    assert any(f"<{FOAF}currentProject> have no cue" in p for p in validation["problems"])
