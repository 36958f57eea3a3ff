"""Everything a process needs, opened once at start-up and shared by API, workers and CLI."""

from __future__ import annotations

from dataclasses import dataclass

from genkeep.blobs import BlobStore, open_blob_store
from genkeep.blobs.traced import trace_writes
from genkeep.config import Settings
from genkeep.db.artifacts import ArtifactStore
from genkeep.db.database import Database
from genkeep.db.drivers.wakeups import Wakeups
from genkeep.db.jobs import JobStore
from genkeep.db.keys import ApiKeyStore
from genkeep.db.llm_cache import DbLlmCache
from genkeep.db.migrate import prepare_schema
from genkeep.db.prompts import PromptStore
from genkeep.db.rate_buckets import RateBuckets
from genkeep.db.run_changes import RunChanges
from genkeep.db.runs import RunStore
from genkeep.db.spend import SpendStore
from genkeep.db.task_changes import TaskChanges
from genkeep.db.tasks import TaskStore
from genkeep.db.url import async_url, is_ephemeral
from genkeep.errors import ConfigurationError
from genkeep.extract.service import ExtractionService, ExtractionSetup, default_extractors
from genkeep.generate.backends import build_generators
from genkeep.generate.chat import ChatService
from genkeep.generate.embeddings import EmbeddingService
from genkeep.generate.limits import ProviderLimiter
from genkeep.generate.metering import Metering
from genkeep.generate.service import GenerateService
from genkeep.jobs import Catalogue, load_catalogue
from genkeep.telemetry import otel_metrics, tracing


@dataclass
class Services:
    settings: Settings
    database: Database
    prompts: PromptStore
    spend: SpendStore
    metering: Metering
    generate: GenerateService
    chat: ChatService
    embeddings: EmbeddingService
    keys: ApiKeyStore
    jobs: JobStore
    tasks: TaskStore
    task_changes: TaskChanges
    artifacts: ArtifactStore
    runs: RunStore
    run_changes: RunChanges
    extraction: ExtractionService
    blobs: BlobStore
    wakeups: Wakeups
    # The task kinds this process accepts: built-in and GENKEEP_TASK_MODULES extensions.
    catalogue: Catalogue


async def open_services(settings: Settings) -> Services:
    """Connect and check everything; raise a GenkeepError if this process cannot run."""
    check_durable(settings)
    tracing.configure()
    otel_metrics.configure()
    catalogue = load_catalogue(settings.task_modules)
    database = open_database(
        settings,
        pool_size=settings.db_pool_size,
        statement_timeout_s=settings.db_statement_timeout_s,
    )
    try:
        await prepare_schema(database)
        generators = build_generators(settings)
        blobs = await open_blob_store(settings)
        if tracing.tracer() is not None:
            blobs = trace_writes(blobs)
    except BaseException:
        await database.dispose()
        raise
    prompts = PromptStore(database)
    artifacts = ArtifactStore(database, settings.artifact_retention_days)
    wakeups = Wakeups(database.driver)
    runs = RunStore(database)
    limiter = ProviderLimiter(RateBuckets(database), settings)
    extractors = default_extractors(
        settings, DbLlmCache(database, settings.llm_cache_ttl_s), limiter
    )
    spend = SpendStore(database)
    metering = Metering(spend, RateBuckets(database), settings)
    generate = GenerateService(prompts, settings, generators, metering)
    return Services(
        settings=settings,
        database=database,
        prompts=prompts,
        spend=spend,
        metering=metering,
        generate=generate,
        chat=ChatService(generate),
        embeddings=EmbeddingService(generate),
        keys=ApiKeyStore(database),
        jobs=JobStore(database),
        tasks=TaskStore(database, artifacts, on_submit=wakeups.notify_local),
        task_changes=TaskChanges(database),
        artifacts=artifacts,
        runs=runs,
        run_changes=RunChanges(database),
        extraction=ExtractionService(runs, blobs, extractors, ExtractionSetup.of(settings)),
        blobs=blobs,
        wakeups=wakeups,
        catalogue=catalogue,
    )


def open_database(
    settings: Settings, *, pool_size: int = 10, statement_timeout_s: float | None = None
) -> Database:
    """The settings' database; only the data folder, where the embedded database lives, is
    made here: a database URL naming a missing folder is an error (a typo, not a wish)."""
    if settings.database_in_data_dir:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Database(
        settings.database_url, pool_size=pool_size, statement_timeout_s=statement_timeout_s
    )


async def close_services(services: Services) -> None:
    await services.generate.aclose()
    for generator in services.generate.generators.values():
        close = getattr(generator, "aclose", None)
        if close is not None:
            await close()
    for extractor in set(services.extraction.extractors.values()):
        close = getattr(extractor, "aclose", None)
        if close is not None:
            await close()
    await services.wakeups.stop()
    await services.task_changes.stop()
    await services.run_changes.stop()
    await services.blobs.aclose()
    await services.database.dispose()
    tracing.flush()


def check_durable(settings: Settings) -> None:
    """Refuse an in-memory or temporary database in production (I12)."""
    if settings.env != "production":
        return
    reason = is_ephemeral(async_url(settings.database_url))
    if reason:
        raise ConfigurationError(
            f"refusing to run in production on {settings.database_url}: {reason}. "
            "Set GENKEEP_DATABASE_URL to PostgreSQL or a durable SQLite file."
        )
