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

    def key_material(self) -> dict[str, Any]:
        """The parameters that change output, so one model never serves another's answer."""
        return self.model_dump(exclude={"latency_ms", "chat_normalization"})


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

    # Whether neither the database nor the data folder was chosen by a setting.
    _default_location: bool = PrivateAttr(default=False)

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
