"""Starting and resuming runs: the manifest (I7), its checks on resume, and run inputs."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from genkeep.blobs import BlobStore
from genkeep.config import Settings
from genkeep.core.hashes import sha256_hex
from genkeep.db.models import Run
from genkeep.db.ontologies import OntologyStore
from genkeep.db.runs import RunStore
from genkeep.errors import BadInput, ManifestMismatch
from genkeep.extract.builtin import BuiltinExtractor
from genkeep.extract.fleet import FleetSettings, FleetWorker
from genkeep.extract.index import IndexCache
from genkeep.extract.limits import provider_limit
from genkeep.extract.llm.extractor import LlmCache, LlmExtractor
from genkeep.extract.model import ChunkParams, Extractor
from genkeep.extract.ner import pipeline
from genkeep.extract.ner.extractor import NerExtractor
from genkeep.extract.ner.mapping import read_overrides
from genkeep.extract.ontology import Ontology, load_ontology
from genkeep.extract.runner import ExtractionRunner, RunInputs
from genkeep.extract.source import (
    InputFile,
    RunText,
    TextInMemory,
    check_sha256,
    spool_blob,
)
from genkeep.generate.limits import ProviderLimiter
from genkeep.telemetry import tracing
from genkeep.telemetry.messaging import producer_span

log = logging.getLogger(__name__)


LLM_NOT_CONFIGURED = (
    "the llm extractor is not configured: set GENKEEP_EXTRACT_LLM_MODEL (the model, e.g. "
    "gpt-4o-mini) and GENKEEP_OPENAI_BASE_URL (any OpenAI-compatible API), plus "
    "GENKEEP_OPENAI_API_KEY if that API needs a key"
)
NER_NOT_INSTALLED = (
    "the ner extractor needs spaCy and a pipeline: pip install 'genkeep[ner]' && "
    "python -m spacy download en_core_web_sm (or set GENKEEP_NER_MODEL to an installed "
    "pipeline's name or folder)"
)


@dataclass(frozen=True, slots=True)
class RunRequest:
    text: str  # ignored when ``input_file`` is set
    input_name: str
    ontology: bytes
    ontology_name: str
    params: ChunkParams
    input_file: InputFile | None = None  # a local file, stored without reading it whole


@dataclass(frozen=True, slots=True)
class ExtractionSetup:
    """How this process sets runs up (``GENKEEP_EXTRACT_*``): their requests and runners."""

    chunk_size: int
    overlap: int
    batch_size: int
    max_input_bytes: int
    lease_s: float
    concurrency: int
    default_extractor: str = "auto"  # GENKEEP_EXTRACT_DEFAULT
    run_concurrency: int = 16
    owner_concurrency: int = 0
    fleet_slots: int = 2
    poll_s: float = 0.5

    @classmethod
    def of(cls, settings: Settings) -> ExtractionSetup:
        return cls(
            chunk_size=settings.extract_chunk_size,
            overlap=settings.extract_overlap,
            batch_size=settings.extract_batch_size,
            max_input_bytes=settings.max_run_input_bytes,
            lease_s=settings.extract_lease_s,
            concurrency=settings.extract_concurrency,
            default_extractor=settings.extract_default,
            run_concurrency=settings.extract_run_concurrency,
            owner_concurrency=settings.extract_owner_concurrency,
            fleet_slots=settings.extract_fleet_slots,
            poll_s=settings.extract_poll_s,
        )

    def request(
        self,
        text: str,
        input_name: str,
        ontology: bytes,
        ontology_name: str,
        *,
        chunk_size: int | None = None,
        overlap: int | None = None,
        batch_size: int | None = None,
        limit_input: bool = True,
        input_file: InputFile | None = None,
    ) -> RunRequest:
        """A run's request, unset chunking from the settings; BadInput for a bad parameter.

        ``limit_input``: refuse a text over ``GENKEEP_MAX_RUN_INPUT_BYTES`` (the API and
        tasks; the CLI reads local files of any size).
        """
        size = len(text.encode("utf-8")) if input_file is None else input_file.size
        if limit_input and size > self.max_input_bytes:
            raise BadInput(f"text is larger than {self.max_input_bytes} bytes")
        params = ChunkParams(
            size=self.chunk_size if chunk_size is None else chunk_size,
            overlap=self.overlap if overlap is None else overlap,
            batch_size=self.batch_size if batch_size is None else batch_size,
        )
        defaulted = {
            name
            for name, given in (("size", chunk_size), ("overlap", overlap), ("batch", batch_size))
            if given is None
        }
        check_params(params, defaulted)
        return RunRequest(text, input_name, ontology, ontology_name, params, input_file)


def check_params(params: ChunkParams, defaulted: frozenset[str] | set[str] = frozenset()) -> None:
    """BadInput naming the offending value, and the setting it came from if it was a default."""

    def shown(label: str, value: int, name: str, setting: str) -> str:
        origin = f" (the default, GENKEEP_EXTRACT_{setting})" if name in defaulted else ""
        return f"{label} {value}{origin}"

    size = shown("chunk size", params.size, "size", "CHUNK_SIZE")
    overlap = shown("overlap", params.overlap, "overlap", "OVERLAP")
    batch = shown("batch size", params.batch_size, "batch", "BATCH_SIZE")
    if params.size < 1:
        raise BadInput(f"{size} must be at least 1")
    if params.batch_size < 1:
        raise BadInput(f"{batch} must be at least 1")
    if params.overlap < 0:
        raise BadInput(f"{overlap} must not be negative")
    if params.overlap >= params.size:
        raise BadInput(
            f"{overlap} must be smaller than {size}: set a smaller overlap or a larger chunk size"
        )


class ExtractionService:
    """Creates runs with their manifest, rebuilds a run's inputs and the runner that executes it.

    The one set-up of extraction that the API, the worker and the CLI share.
    """

    def __init__(
        self,
        runs: RunStore,
        blobs: BlobStore,
        extractors: dict[str, Extractor],
        setup: ExtractionSetup,
        index_cache: IndexCache | None = None,
    ) -> None:
        self.runs = runs
        self.ontologies = OntologyStore(runs.db)
        self.blobs = blobs
        self.setup = setup
        self.extractors = extractors
        self.index_cache = index_cache or IndexCache()

    @property
    def default_extractor(self) -> str:
        """GENKEEP_EXTRACT_DEFAULT; auto: ``ner`` when its pipeline is installed, else
        ``builtin``."""
        return pick_default(self.extractors, self.setup.default_extractor)

    def extractor(self, name: str | None = None) -> Extractor:
        """The extractor by name (None: the default); BadInput naming what is missing."""
        return self.pick(self.extractors, name or self.default_extractor)

    @staticmethod
    def pick(extractors: dict[str, Extractor], name: str) -> Extractor:
        found = extractors.get(name)
        if found is None and name == "llm":
            raise BadInput(LLM_NOT_CONFIGURED)
        if found is None and name == "ner":
            raise BadInput(NER_NOT_INSTALLED)
        if found is None:
            raise BadInput(f"unknown extractor {name!r}; known: {', '.join(sorted(extractors))}")
        return found

    async def create(
        self,
        owner_id: str,
        request: RunRequest,
        extractor_name: str | None,
        job_id: str | None = None,
        run_id: str | None = None,
        concurrency: int | None = None,
    ) -> Run:
        """Store the input and ontology and a run whose manifest pins them; ``concurrency``:
        the run's batches in flight at once across the fleet (unset: the setting's)."""
        ontology = load_ontology(request.ontology, name=request.ontology_name)
        extractor = self.extractor(extractor_name)
        check_params(request.params)
        params = request.params
        await self.ontologies.save(ontology.content_hash, ontology.canonical.decode("utf-8"))
        digest, chars = await self._store_input(owner_id, request)
        key = _input_key(owner_id, digest)
        version = extractor.version
        if isinstance(extractor, NerExtractor):
            # The mapping the run starts with is kept, so a resume maps the same way.
            # Off the loop: the first call loads the spaCy pipeline (seconds).
            version, record = await asyncio.to_thread(extractor.pin, self.index_cache.get(ontology))
            await self.blobs.put(
                _pin_key(owner_id, extractor.name, version), record, content_type="application/json"
            )
        manifest: dict[str, Any] = {
            "job_id": job_id,
            "input_name": request.input_name[:255],
            "input_sha256": digest,
            "input_blob_key": key,
            "input_chars": chars,
            "ontology_hash": ontology.content_hash,
            "extractor_name": extractor.name,
            "extractor_version": version,
            "chunk_size": params.size,
            "chunk_overlap": params.overlap,
            "batch_size": params.batch_size,
            "concurrency": concurrency,
        }
        with producer_span(extractor.name, destination="runs") as span:
            # Stored with the run row (I18): whoever executes the run continues this trace.
            manifest["trace_context"] = tracing.carrier()
            run = await self.runs.create(owner_id, manifest, run_id)
            if span is not None:
                span.set_attribute("messaging.message.id", run.id)
            return run

    async def _store_input(self, owner_id: str, request: RunRequest) -> tuple[str, int]:
        """The input's blob, keyed by its sha256: the sha256 and its length in characters."""
        media_type = "text/plain; charset=utf-8"
        found = request.input_file
        if found is None:
            data = request.text.encode("utf-8")
            digest = sha256_hex(data)
            await self.blobs.put(_input_key(owner_id, digest), data, content_type=media_type)
            return digest, len(request.text)
        key = _input_key(owner_id, found.sha256)
        stored = await self.blobs.put_file(key, found.path, content_type=media_type)
        if stored.sha256 != found.sha256:
            raise BadInput(f"{found.path.name} changed while it was being read; try again")
        return found.sha256, found.chars

    def runner(self) -> ExtractionRunner:
        """A runner that executes runs with this process's lease and concurrency."""
        return ExtractionRunner(
            self.runs,
            self.blobs,
            lease_s=self.setup.lease_s,
            concurrency=self.setup.concurrency,
            run_concurrency=self.setup.run_concurrency,
            owner_concurrency=self.setup.owner_concurrency,
            poll_s=self.setup.poll_s,
        )

    def fleet_worker(self, *, slots: int | None = None, run_id: str | None = None) -> FleetWorker:
        """A fleet worker of this process: batches of any running run it has the extractor
        of (or of ``run_id`` only), ``slots`` at once (unset: GENKEEP_EXTRACT_FLEET_SLOTS)."""
        settings = FleetSettings(
            lease_s=self.setup.lease_s,
            poll_s=self.setup.poll_s,
            slots=self.setup.fleet_slots if slots is None else slots,
            run_concurrency=self.setup.run_concurrency,
            owner_concurrency=self.setup.owner_concurrency,
        )
        names = {e.name for e in self.extractors.values()}
        return FleetWorker(self.runs, self.inputs, sorted(names), settings, run_id=run_id)

    async def inputs(
        self,
        run: Run,
        *,
        text: str | None = None,
        ontology: bytes | None = None,
        ontology_name: str = "",
        input_file: InputFile | None = None,
    ) -> RunInputs:
        """The run's inputs, checked against its manifest; a changed input is refused.

        The stored input is read from a spooled copy, a piece at a time; ``text`` (in
        memory) is used as it is; ``input_file`` is only checked against the manifest.
        """
        extractor = self.extractor(run.extractor_name)
        if isinstance(extractor, NerExtractor) and run.extractor_version.startswith(
            extractor.version + "."
        ):
            key = _pin_key(run.owner_id, extractor.name, run.extractor_version)
            record = await self.blobs.get(key)
            extractor = await asyncio.to_thread(extractor.pinned, run.extractor_version, record)
        elif extractor.version != run.extractor_version:
            raise ManifestMismatch(
                f"run {run.id} was extracted with {run.extractor_name} {run.extractor_version}, "
                f"this genkeep has {extractor.version}; start a new run"
            )
        if input_file is not None:
            check_sha256(input_file.sha256, run.input_sha256, run.id)
        source: RunText
        if text is not None:
            check_sha256(sha256_hex(text.encode("utf-8")), run.input_sha256, run.id)
            source = TextInMemory(text)
        else:
            source = await spool_blob(self.blobs, run.input_blob_key, run.input_sha256, run.id)
        loaded: Ontology
        if ontology is not None:
            loaded = load_ontology(ontology, name=ontology_name)
            if loaded.content_hash != run.ontology_hash:
                raise ManifestMismatch(
                    f"the ontology differs from the one run {run.id} started with; start a new run"
                )
        else:
            canonical = await self.ontologies.get(run.ontology_hash)
            if canonical is None:
                raise ManifestMismatch(f"the ontology of run {run.id} is not stored any more")
            loaded = load_ontology(canonical.encode("utf-8"), fmt="nt", name="stored.nt")
        index = self.index_cache.get(loaded)
        return RunInputs(
            text=source,
            index=index,
            ontology_ttl=loaded.canonical,
            extractor=extractor.for_owner(run.owner_id),
            trace_context=run.trace_context,
        )


def llm_configured(settings: Settings) -> bool:
    """A model, and an API to ask it (a base URL, or OpenAI's own with a key)."""
    return bool(
        settings.extract_llm_model and (settings.openai_base_url or settings.openai_api_key)
    )


def pick_default(extractors: dict[str, Extractor], setting: str) -> str:
    if setting != "auto":
        return setting
    return "ner" if "ner" in extractors else "builtin"


def _input_key(owner_id: str, digest: str) -> str:
    return f"owners/{owner_id}/inputs/{digest}"


def _pin_key(owner_id: str, extractor_name: str, version: str) -> str:
    return f"owners/{owner_id}/extractor-pins/{extractor_name}-{version}.json"


def ner_available(settings: Settings) -> bool:
    return pipeline.available(settings.ner_model)


# The short names a run is started with, and the names its row stores (RunOut.extractor).
EXTRACTOR_NAMES = {
    "builtin": BuiltinExtractor.name,
    "ner": NerExtractor.name,
    "llm": LlmExtractor.name,
}


def stored_extractor_name(name: str) -> str:
    """The name a run's row stores for ``name`` (a short name or the stored one itself)."""
    return EXTRACTOR_NAMES.get(name, name)


def default_extractors(
    settings: Settings | None = None,
    cache: LlmCache | None = None,
    limiter: ProviderLimiter | None = None,
) -> dict[str, Extractor]:
    """The built-in extractor; the ner extractor when its spaCy pipeline is installed; the
    LLM extractor when a model and an API are configured."""
    builtin = BuiltinExtractor()
    extractors: dict[str, Extractor] = {builtin.name: builtin, "builtin": builtin}
    if settings is not None and ner_available(settings):
        overrides = read_overrides(settings.ner_mapping) if settings.ner_mapping else None
        ner = NerExtractor(settings.ner_model, overrides)
        extractors[ner.name] = extractors["ner"] = ner
    if settings is not None and llm_configured(settings) and cache is not None:
        assert settings.extract_llm_model is not None
        model = settings.extract_llm_model
        limit = provider_limit(limiter, settings, model)
        llm = LlmExtractor.from_settings(settings, model=model, cache=cache, limit=limit)
        extractors[llm.name] = extractors["llm"] = llm
    return extractors
