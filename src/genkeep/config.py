"""Settings, read once from the environment (``GENKEEP_*``, ``DATABASE_URL``) and ``.env``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from platformdirs import user_data_dir
from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

DATABASE_FILE = "genkeep.db"


def default_data_dir() -> Path:
    """One folder per user (XDG on Linux), so every folder the CLI runs from sees one store."""
    return Path(user_data_dir("genkeep", appauthor=False))


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


class GeneratorProfile(BaseModel):
    """A named generator configuration; every field except ``latency_ms`` changes output."""

    backend: Literal["builtin", "openai"] = "builtin"
    model: str = "genkeep-builtin-1"
    temperature: float | None = None
    max_tokens: int | None = None
    system_prompt: str | None = None
    # Simulated latency of the built-in generator (tests, benchmarks); never part of the key.
    latency_ms: int = Field(default=0, ge=0)
    # How /v1/chat/completions normalizes message text for its cache key (docs/chat.md);
    # it keys chat only, so it stays out of the key material of /v1/generate.
    chat_normalization: Literal["whitespace", "seed", "exact"] = "whitespace"
    # Result retention (never part of the key): unset keeps every version for ever. The
    # sweep deletes versions beyond the newest ``keep_versions``, and versions older than
    # ``keep_days``; a prompt's latest result always stays.
    keep_versions: int | None = Field(default=None, ge=1)
    keep_days: float | None = Field(default=None, gt=0)

    # Cost control (docs/cost-control.md); none of it changes output, so none is in the key.
    # USD per million tokens: input, output, and input the provider served from its cache.
    price_input: float = Field(default=0.0, ge=0)
    price_output: float = Field(default=0.0, ge=0)
    price_cached_input: float | None = Field(default=None, ge=0)
    # The provider's limits for this profile, shared by every process (a database bucket).
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    # Output tokens reserved for a call that sets no max_tokens (a budget's estimate).
    estimate_output_tokens: int = Field(default=1024, ge=0)

    def key_material(self) -> dict[str, Any]:
        """The parameters that change output, so one model never serves another's answer."""
        return self.model_dump(exclude=_NOT_OUTPUT)


_NOT_OUTPUT = {
    "latency_ms",
    "chat_normalization",
    "price_input",
    "price_output",
    "price_cached_input",
    "rpm",
    "tpm",
    "estimate_output_tokens",
    "keep_versions",
    "keep_days",
}


def own_url(host: str, port: int) -> str:
    """The URL a client on this machine reaches a server bound to host:port at."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class Settings(BaseSettings):
    """Every setting genkeep reads; ``.env.example`` documents each one."""

    model_config = SettingsConfigDict(
        env_prefix="GENKEEP_", env_file=".env", extra="ignore", populate_by_name=True
    )

    # Unset: the SQLite file <data_dir>/genkeep.db (the embedded default).
    database_url: str = Field(
        default="",
        validation_alias=AliasChoices("GENKEEP_DATABASE_URL", "DATABASE_URL"),
    )
    env: Literal["development", "production"] = "development"
    data_dir: Path = Field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    # Longer than the idle timeout of clients' pools (httpx: 5 s) and of load balancers
    # (60 s): a server that closes first races the client's next request on that connection,
    # which then fails with no response at all.
    keep_alive_s: int = Field(default=75, gt=0)
    # The request line and headers of one request (431 beyond): nginx's default is 8-32 KiB.
    max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    # A request's head must arrive whole within this; a body that stalls this long is
    # answered 408: half-sent requests otherwise hold a connection (and a file) for ever.
    header_timeout_s: float = Field(default=10.0, gt=0)
    body_timeout_s: float = Field(default=30.0, gt=0)

    persistence_enabled: bool = True
    persistence_await: bool = True

    default_owner: str = "default"
    default_profile: str = "default"
    profiles: dict[str, GeneratorProfile] = Field(
        default_factory=lambda: {"default": GeneratorProfile()}
    )
    builtin_latency_ms: int = Field(default=0, ge=0)

    openai_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    openai_timeout_s: float = Field(default=60.0, gt=0)
    openai_max_retries: int = Field(default=3, ge=0)

    # Upstream attempts for one prompt per window, genkeep's own retries included: a client's
    # retries arriving meanwhile are refused (429, the provider's Retry-After), not re-tried.
    upstream_window_s: float = Field(default=60.0, gt=0)
    upstream_window_attempts: int = Field(default=3, ge=1)
    # Seconds' worth of a per-minute limit a bucket holds: 1 lets RPM/60 through at once.
    rate_limit_burst_s: float = Field(default=1.0, gt=0)
    # How much later than another call admitted after it a call may reach the provider while
    # no second of the provider's sees more than its RPM/60: provider calls are spaced
    # 60/RPM x (1 + this) apart (a tenth of a second costs 9 % of the provider's rate), and an
    # admission that came back later than this is void (generate.limits).
    provider_limit_slack_s: float = Field(default=0.1, ge=0, le=1)
    # Whether a cache hit counts toward a key's requests per minute (it never spends budget).
    limits_count_hits: bool = True
    # Seconds a process trusts the limits it read: a change reaches every process within it.
    limits_cache_s: float = Field(default=2.0, ge=0)
    # A crashed holder's budget reservation is released after this (I16).
    reservation_lease_s: float = Field(default=300.0, gt=0)

    claim_lease_s: float = Field(default=30.0, gt=0)
    claim_wait_s: float = Field(default=120.0, gt=0)
    claim_poll_s: float = Field(default=0.02, gt=0)

    # Auth: API keys are required when true; unset means "required in production only".
    auth_required: bool | None = None
    # Trusted-gateway mode (opt-in): the owner is read from this header, e.g. X-Genkeep-Owner.
    owner_header: str | None = None

    task_lease_s: float = Field(default=30.0, gt=0)
    task_poll_s: float = Field(default=1.0, gt=0)
    task_max_attempts: int = Field(default=3, ge=1)
    task_timeout_s: float = Field(default=3600.0, gt=0)
    task_backoff_base_s: float = Field(default=2.0, ge=0)
    task_backoff_max_s: float = Field(default=300.0, ge=0)
    worker_concurrency: int = Field(default=4, ge=1)
    worker_shutdown_grace_s: float = Field(default=20.0, ge=0)
    # Run a worker inside `genkeep serve` (the embedded default); off when workers run apart.
    serve_worker: bool = True
    # Extension modules declaring task kinds (TASK_KINDS) and their handlers (TASK_HANDLERS),
    # read by the API and the workers (jobs/catalogue.py). From the environment
    # it is a JSON list, e.g. GENKEEP_TASK_MODULES='["myapp.tasks"]'; a comma-separated
    # or empty value is rejected as invalid settings.
    task_modules: list[str] = Field(default_factory=list)
    artifact_retention_days: int = Field(default=90, ge=1)

    # Extraction runs: lease of a running run, and batches extracted at once per run.
    extract_lease_s: float = Field(default=30.0, gt=0)
    extract_concurrency: int = Field(default=2, ge=1)
    extract_chunk_size: int = Field(default=4000, ge=1)
    extract_overlap: int = Field(default=200, ge=0)
    extract_batch_size: int = Field(default=8, ge=1)
    # The fleet (docs/extract.md): a run's batches in flight at once across all workers
    # (a run may set its own), an owner's total over all its runs (0: none), the batches
    # each `genkeep worker` extracts for other processes' runs (0: none), and how often an
    # idle worker looks for batches.
    extract_run_concurrency: int = Field(default=16, ge=1)
    extract_owner_concurrency: int = Field(default=0, ge=0)
    extract_fleet_slots: int = Field(default=2, ge=0)
    extract_poll_s: float = Field(default=0.5, gt=0)
    # The model of the LLM extractor (OpenAI-compatible, GENKEEP_OPENAI_*); unset disables it.
    extract_llm_model: str | None = None
    # The extractor of a run that names none: auto is ner when its pipeline is installed,
    # else builtin.
    extract_default: Literal["auto", "builtin", "ner", "llm"] = "auto"
    # The spaCy pipeline of the ner extractor: an installed package's name or a folder.
    ner_model: str = "en_core_web_sm"
    # A JSON file mapping entity types to ontology classes, over the automatic mapping.
    ner_mapping: Path | None = None
    max_run_input_bytes: int = Field(default=20 * 1024 * 1024, gt=0)

    blob_backend: Literal["local", "s3", "azure"] = "local"
    # Local blob folder; defaults to <data_dir>/blobs.
    blob_dir: Path | None = None
    # HMAC key for local signed URLs; a random key is made and kept in <data_dir> if unset.
    signing_key: SecretStr | None = None
    signed_url_ttl_s: int = Field(default=300, gt=0)
    # Base URL the API is reached at, for local signed download URLs; unset, this server's
    # own address (GENKEEP_HOST, GENKEEP_PORT), so a changed port does not break downloads.
    public_url: str = ""
    s3_bucket: str = "genkeep"
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    azure_connection_string: SecretStr | None = None
    azure_container: str = "genkeep"

    max_prompt_bytes: int = Field(default=64 * 1024, gt=0)
    # A chat's canonical messages: long contexts (a 1 MiB chat is some 250k tokens).
    max_chat_bytes: int = Field(default=1024 * 1024, gt=0)
    max_edit_bytes: int = Field(default=1024 * 1024, gt=0)
    # Every request body, checked before it is read (413); room for a default-sized run input.
    max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    # The raw body of a job file upload, which alone may exceed max_body_bytes.
    max_upload_bytes: int = Field(default=100 * 1024 * 1024, gt=0)
    # Seconds a client is told to wait (Retry-After) when the database is unavailable.
    retry_after_s: int = Field(default=5, ge=1)
    # Blobs no row references are swept only once older than this (an upload in flight).
    orphan_grace_s: float = Field(default=3600.0, ge=0)
    db_pool_size: int = Field(default=10, gt=0)
    # A trace viewer's page for one trace, e.g. https://jaeger.example.com/trace/{trace_id}:
    # the console links a task's and an event's trace id there. Unset: ids shown, not linked.
    trace_url: str = ""

    # Retention (docs/operations.md), in seconds; the sweep deletes in batches of sweep_batch.
    retention_enabled: bool = True
    # Change logs of finished tasks and stopped runs: a stream reconnects within minutes.
    retention_changes_s: float = Field(default=3600.0, ge=0)
    # Finished tasks (their idempotency keys with them); a job's audit log stays.
    retention_tasks_s: float = Field(default=7 * 86400.0, ge=0)
    # Batch results of completed runs (export and resume read the stored documents).
    retention_run_batches_s: float = Field(default=86400.0, ge=0)
    # The task.* events of a job's audit log; unset: they stay as long as the job.
    retention_task_events_s: float | None = Field(default=None, ge=0)
    llm_cache_ttl_s: float = Field(default=30 * 86400.0, gt=0)
    # How often some worker sweeps (one process per period, recorded in the database);
    # 0 leaves sweeping to `genkeep ops sweep` (a CronJob).
    sweep_interval_s: float = Field(default=3600.0, ge=0)
    sweep_batch: int = Field(default=1000, ge=1)
    # How long a deletion waits for the running tasks it cancelled to stop.
    deletion_wait_s: float = Field(default=5.0, ge=0)
    # The bearer token of the admin API (owner purge, limits); unset, the admin API refuses.
    admin_token: SecretStr | None = None

    # A statement (or its wait for a lock) running longer is cancelled: the request answers
    # 503 instead of hanging (PostgreSQL statement_timeout and lock_timeout; SQLite's busy
    # timeout).
    db_statement_timeout_s: float = Field(default=30.0, gt=0)

    # Whether neither the database nor the data folder was chosen by a setting.
    _default_location: bool = PrivateAttr(default=False)

    @field_validator("trace_url")
    @classmethod
    def _trace_placeholder(cls, value: str) -> str:
        if value.strip() and "{trace_id}" not in value:
            raise ValueError("GENKEEP_TRACE_URL must contain {trace_id}, where the id goes")
        return value.strip()

    @field_validator("data_dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @model_validator(mode="after")
    def _embedded_default(self) -> Settings:
        chosen = {"database_url", "data_dir"} & self.model_fields_set
        self._default_location = not chosen
        if not self.database_url.strip():
            if "database_url" in chosen:
                raise ValueError("database URL must not be empty")
            self.database_url = sqlite_url(self.data_dir.absolute() / DATABASE_FILE)
        self.database_url = self.database_url.strip()
        if not self.public_url.strip():
            self.public_url = own_url(self.host, self.port)
        return self

    @property
    def database_is_default(self) -> bool:
        return self._default_location

    @property
    def database_in_data_dir(self) -> bool:
        """Whether the database is the embedded file in the data folder, which genkeep makes."""
        return self.database_url == sqlite_url(self.data_dir.absolute() / DATABASE_FILE)

    @property
    def auth_enforced(self) -> bool:
        return self.env == "production" if self.auth_required is None else self.auth_required

    def profile(self, name: str | None) -> tuple[str, GeneratorProfile] | None:
        """The named profile (or the default), with the built-in latency applied."""
        chosen = self.default_profile if name is None else name
        found = self.profiles.get(chosen)
        if found is None:
            return None
        if found.backend == "builtin" and self.builtin_latency_ms and not found.latency_ms:
            found = found.model_copy(update={"latency_ms": self.builtin_latency_ms})
        return chosen, found


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with explicit overrides winning."""
    return Settings(**overrides)


def prometheus_multiproc_dir() -> str | None:
    """Where Prometheus keeps per-process metric files when several processes serve."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


def set_prometheus_multiproc_dir(path: str) -> None:
    """Must run before prometheus_client is imported by the server processes."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path


def hand_to_server_processes(**values: object) -> None:
    """Settings for the server processes uvicorn starts, which read theirs again: ``GENKEEP_*``."""
    for name, value in values.items():
        os.environ[f"GENKEEP_{name.upper()}"] = str(value)


def columns_set() -> bool:
    """Whether ``COLUMNS`` gives the terminal's width (rich reads it)."""
    return "COLUMNS" in os.environ


# The OpenTelemetry SDK reads the rest of its standard variables (service name, resource
# attributes, exporter headers, batch sizes) itself; genkeep decides only whether to start it.
def otel_traces_endpoint() -> str | None:
    """Where spans go over OTLP/HTTP, or None: tracing is off until one is set."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    return (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or None
    )


def otel_metrics_endpoint() -> str | None:
    """Where metrics go over OTLP/HTTP, or None (they stay on ``/metrics`` only)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if os.environ.get("OTEL_METRICS_EXPORTER", "").strip().lower() == "none":
        return None
    return (
        os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or None
    )


def otel_capture_content() -> bool:
    """Whether GenAI spans may carry message content (the GenAI conventions' opt-in)."""
    value = os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "")
    return value.strip().lower() in ("true", "1", "span_only", "span_and_event")


def otel_service_name_set() -> bool:
    """Whether the operator named the service (else genkeep names itself)."""
    return bool(os.environ.get("OTEL_SERVICE_NAME")) or "service.name=" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
