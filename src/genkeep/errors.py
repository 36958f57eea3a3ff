"""genkeep's one error hierarchy; the API maps ``code`` and ``status`` to problem+json.

GenkeepError                      code                  status
├── BadInput                      bad-input             422
│   ├── PromptEmpty               prompt-empty          422
│   ├── PromptTooLarge            prompt-too-large      413
│   ├── ContextLengthExceeded     context-length-exceeded 400 (a chat over GENKEEP_MAX_CHAT_BYTES)
│   ├── PayloadTooLarge           payload-too-large     413  (api.guard)
│   ├── InvalidText               invalid-text          422  (NUL, lone surrogate; api.guard)
│   ├── UnknownProfile            unknown-profile       422
│   ├── IdempotencyMismatch       idempotency-mismatch  422
│   ├── OntologyInvalid           ontology-invalid      422  (extract.ontology)
│   └── InvalidBlobKey            invalid-blob-key      422  (blobs.store)
├── MalformedRequest              malformed-request     400  (JSON too deep, two credentials)
│   └── InvalidJson               invalid-json          400
├── Unauthorized                  unauthorized          401
├── Forbidden                     forbidden             403  (the admin API, off or refused)
├── NotFound                      not-found             404
│   ├── UnknownModel              model-not-found       404  (chat completions' model)
│   └── BlobNotFound              blob-not-found        404  (blobs.store)
├── Conflict                      conflict              409
│   ├── GateClosed                gate-closed           409  (jobs.gates)
│   ├── ManifestMismatch          manifest-mismatch     409  (a run resumed with other inputs)
│   ├── RunActive                 run-active            409  (extract.manager)
│   └── BlobKeyConflict           blob-key-conflict     409  (blobs.local)
├── PreconditionFailed            precondition-failed   412
├── LeaseLost                     lease-lost            409  (workers: fenced out)
├── RunBusy                       run-busy              409  (another process holds the run)
├── SignedUrlRefused              signed-url-refused    403  (blobs.local)
│   ├── SignedUrlExpired          signed-url-expired    403
│   └── SignedUrlInvalid          signed-url-invalid    403
├── ExtractionFailed              extraction-failed     502  (the LLM extractor)
├── GenerationFailed              generation-failed     502  (upstream 5xx, bad bodies)
├── GenerationTimeout             generation-timeout    504
│   └── UpstreamTimeout           upstream-timeout      504  (the provider did not answer in time)
├── RateLimited                   rate-limited          429  (Retry-After; generate.limits)
│   ├── UpstreamRateLimited       upstream-rate-limited 429  (the provider's 429 and Retry-After)
│   └── BudgetExceeded            budget-exceeded       429  (a key's or owner's spend limit)
├── PersistenceFailed             persistence-failed    503
├── CorruptBatch                  corrupt-batch         500  (a stored batch failed its checksum)
├── DatabaseUnavailable           database-unavailable  503  (api.failures: down, unreachable)
├── ConfigurationError            configuration         500  (start-up only)
└── SchemaOutOfDate               schema-out-of-date    503  (start-up only)

Control flow that ``except Exception`` must not swallow derives from ``BaseException``:
``TaskCancelled``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class GenkeepError(Exception):
    """Base of every error genkeep raises on purpose."""

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "genkeep error"
    # A task failing with a retryable error gets another attempt; others fail it at once.
    retryable: ClassVar[bool] = False

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class BadInput(GenkeepError):
    code = "bad-input"
    status = 422
    title = "Invalid input"


class PromptEmpty(BadInput):
    code = "prompt-empty"
    title = "Prompt is empty"


class PromptTooLarge(BadInput):
    code = "prompt-too-large"
    status = 413
    title = "Prompt too large"


class ContextLengthExceeded(BadInput):
    # 400 with this code is how OpenAI refuses a chat too long for the model; SDKs know it.
    code = "context-length-exceeded"
    status = 400
    title = "Chat too long"


class UnknownProfile(BadInput):
    code = "unknown-profile"
    title = "Unknown generator profile"


class IdempotencyMismatch(BadInput):
    code = "idempotency-mismatch"
    title = "Idempotency key reused with a different request"


class PayloadTooLarge(BadInput):
    code = "payload-too-large"
    status = 413
    title = "Request body too large"


class InvalidText(BadInput):
    code = "invalid-text"
    title = "Text the database cannot store"


class OntologyInvalid(BadInput):
    code = "ontology-invalid"
    title = "Invalid ontology"


class InvalidBlobKey(BadInput):
    code = "invalid-blob-key"
    title = "Invalid blob key"


class MalformedRequest(GenkeepError):
    code = "malformed-request"
    status = 400
    title = "Malformed request"


class InvalidJson(MalformedRequest):
    code = "invalid-json"
    title = "Malformed JSON"


class Unauthorized(GenkeepError):
    code = "unauthorized"
    status = 401
    title = "Missing or invalid credentials"


class Forbidden(GenkeepError):
    code = "forbidden"
    status = 403
    title = "Forbidden"


class NotFound(GenkeepError):
    code = "not-found"
    status = 404
    title = "Not found"


class UnknownModel(NotFound):
    code = "model-not-found"
    title = "Unknown model"


class BlobNotFound(NotFound):
    code = "blob-not-found"
    title = "Blob not found"


class Conflict(GenkeepError):
    code = "conflict"
    status = 409
    title = "Conflict"


class GateClosed(Conflict):
    code = "gate-closed"
    title = "The job is not ready for this"


class ManifestMismatch(Conflict):
    code = "manifest-mismatch"
    title = "The run was started with different inputs"


class RunActive(Conflict):
    code = "run-active"
    title = "The run is already active"


class BlobKeyConflict(Conflict):
    code = "blob-key-conflict"
    title = "Blob key conflicts with another key"


class PreconditionFailed(GenkeepError):
    code = "precondition-failed"
    status = 412
    title = "The resource changed since you read it"


class LeaseLost(GenkeepError):
    code = "lease-lost"
    status = 409
    title = "The lease on this task was taken over"


class RunBusy(GenkeepError):
    code = "run-busy"
    status = 409
    title = "The run is owned by another process"
    retryable = True  # its owner's lease expires if that owner died


class SignedUrlRefused(GenkeepError):
    code = "signed-url-refused"
    status = 403
    title = "Signed URL refused"


class SignedUrlExpired(SignedUrlRefused):
    code = "signed-url-expired"
    title = "Signed URL expired"


class SignedUrlInvalid(SignedUrlRefused):
    code = "signed-url-invalid"
    title = "Signed URL signature does not match"


class ExtractionFailed(GenkeepError):
    """The extractor gave no usable answer for a chunk; the batch is recorded as failed."""

    code = "extraction-failed"
    status = 502
    title = "Extraction failed"


class GenerationFailed(GenkeepError):
    code = "generation-failed"
    status = 502
    title = "Generator failed"


class GenerationTimeout(GenkeepError):
    code = "generation-timeout"
    status = 504
    title = "Timed out waiting for a generation"


class UpstreamTimeout(GenerationTimeout):
    code = "upstream-timeout"
    title = "The generator did not answer in time"
    retryable = True


class RateLimited(GenkeepError):
    """Over a limit; ``retry_after_s`` says when to come back (the Retry-After header)."""

    code = "rate-limited"
    status = 429
    title = "Rate limit reached"
    retryable = True

    def __init__(
        self,
        detail: str,
        *,
        retry_after_s: float = 1.0,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail, **extra)
        self.retry_after_s = max(0.0, retry_after_s)
        # Sent with the answer: x-ratelimit-* as OpenAI names them.
        self.headers = dict(headers or {})


class UpstreamRateLimited(RateLimited):
    code = "upstream-rate-limited"
    title = "The generator's provider is rate limiting"


class BudgetExceeded(RateLimited):
    code = "budget-exceeded"
    title = "Budget exceeded"
    retryable = False


class PersistenceFailed(GenkeepError):
    code = "persistence-failed"
    status = 503
    title = "Could not persist the result"


class CorruptBatch(GenkeepError):
    code = "corrupt-batch"
    status = 500
    title = "A stored batch result failed its checksum"


class DatabaseUnavailable(GenkeepError):
    code = "database-unavailable"
    status = 503
    title = "The database is unavailable; retry shortly"
    retryable = True


class ConfigurationError(GenkeepError):
    code = "configuration"
    title = "Invalid configuration"


class SchemaOutOfDate(GenkeepError):
    code = "schema-out-of-date"
    status = 503
    title = "Database schema is out of date"


class TaskCancelled(BaseException):
    """Raised inside a task handler when its task was cancelled; never caught as an error."""
