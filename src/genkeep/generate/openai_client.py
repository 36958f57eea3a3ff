"""The official OpenAI SDK, as the generator and the LLM extractor both use it: one client
set-up (timeouts; genkeep's own retries, which honour Retry-After and ask a gate before each
attempt) and one error mapping whose messages never carry a key.

The SDK's retries are off: an attempt genkeep does not see cannot be counted against the
provider's limit (``generate.limits``) or a prompt's attempt window (``generate.attempts``).
"""

from __future__ import annotations

import asyncio
import email.utils
import inspect
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpx
from openai import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AsyncOpenAI,
    DefaultAsyncHttpxClient,
    OpenAIError,
)

from genkeep.errors import ConfigurationError, GenkeepError
from genkeep.generate.attempts import ATTEMPT_GATE, Gate, ProviderTurn

_MAX_DETAIL_CHARS = 200
# Sent as the bearer token to a server at GENKEEP_OPENAI_BASE_URL when no key is set.
KEYLESS = "no-key"
# What the SDK would retry: timeouts, lost connections, and these statuses.
_RETRIED_STATUSES = frozenset({408, 409, 429})
# A Retry-After longer than this is not waited out inside a request: the error goes back.
MAX_RETRY_AFTER_S = 60.0
_BACKOFF_BASE_S, _BACKOFF_MAX_S = 0.5, 8.0
# The gate of the attempt being made, whose provider's turn (``ProviderTurn.turn``) the HTTP
# client's request hook waits for: as late as the request can be held back.
_TURN: ContextVar[ProviderTurn | None] = ContextVar("genkeep_turn", default=None)
_SENDING = "send_request_headers.started"  # httpcore's trace event (http11., http2.)


async def _take_turn(request: Any) -> None:
    gate = _TURN.get()
    if gate is None:
        return
    asked = await gate.turn()
    traced = request.extensions.get("trace")

    async def sending(event: str, info: dict[str, Any]) -> None:
        nonlocal asked
        if traced is not None:
            result = traced(event, info)
            if inspect.isawaitable(result):
                await result
        if event.endswith(_SENDING) and gate.late(asked):
            # The connection took longer than the slack (a first call's, a new one's): the
            # turn is taken again now, with the connection up.
            asked = await gate.turn()

    request.extensions["trace"] = sending


def _http_client() -> Any:
    """The SDK's own HTTP client, with the hook that waits for the provider's turn."""
    return DefaultAsyncHttpxClient(event_hooks={"request": [_take_turn]})


class _Retry(Exception):
    """An attempt failed in a way worth another attempt, after ``wait_s``."""

    def __init__(self, error: GenkeepError, wait_s: float | None) -> None:
        super().__init__(error.detail)
        self.error = error
        self.wait_s = wait_s


class ChatClient:
    """Chat completions against one OpenAI-compatible endpoint; failures raise ``error``."""

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        timeout_s: float,
        max_retries: int,
        who: str,
        purpose: str,
        error: type[GenkeepError],
        rate_limited: type[GenkeepError] | None = None,
        timed_out: type[GenkeepError] | None = None,
    ) -> None:
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._max_retries = max_retries
        self._who = who
        self._error = error
        # The generator answers an upstream 429 as 429 and a timeout as 504; the extractor,
        # which records a failed batch, keeps its one error.
        self._rate_limited = rate_limited or error
        self._timed_out = timed_out or error
        try:
            self._client = AsyncOpenAI(
                base_url=base_url,
                api_key=api_key,
                timeout=timeout_s,
                max_retries=0,
                http_client=_http_client(),
            )
        except OpenAIError as exc:
            if base_url is None:
                # Missing credentials: the message names settings, never a key value.
                raise ConfigurationError(
                    f"{purpose} needs GENKEEP_OPENAI_API_KEY (or OPENAI_API_KEY)"
                ) from exc
            # A local server (Ollama, vLLM, llama.cpp) asks for no key; the SDK insists on one.
            self._client = AsyncOpenAI(
                base_url=base_url,
                api_key=KEYLESS,
                timeout=timeout_s,
                max_retries=0,
                http_client=_http_client(),
            )

    async def complete(self, gate: Gate | None = None, **request: Any) -> Any:
        """``chat.completions.create(**request)`` with retries, every failure one clear error."""
        return await self._attempts(lambda: self._client.chat.completions.create(**request), gate)

    async def embed(self, gate: Gate | None = None, **request: Any) -> Any:
        """``embeddings.create(**request)``, with retries and failures as in ``complete``."""
        return await self._attempts(lambda: self._client.embeddings.create(**request), gate)

    async def stream(self, gate: Gate | None = None, **request: Any) -> AsyncIterator[Any]:
        """The chunks of a streamed ``chat.completions.create``; failures as in ``complete``.

        Only the opening is retried: once a piece went out, another attempt would repeat it.
        """
        chunks = await self._attempts(
            lambda: self._client.chat.completions.create(stream=True, **request), gate
        )
        received = 0
        with self._mapped_errors(retrying=False):
            try:
                async with chunks:
                    async for chunk in chunks:
                        received += 1
                        yield chunk
            except (httpx.HTTPError, APIError) as exc:
                # Said in full: the client has seen part of the answer and must know why
                # the rest will not come (an SSE error event carries this message).
                detail = self._short_message(getattr(exc, "body", None) or str(exc))
                raise self._error(
                    f"{self._who} stream broke off after {received} chunks "
                    f"({type(exc).__name__}: {detail})",
                    reason="stream-broken",
                ) from None

    async def _attempts(self, call: Callable[[], Awaitable[Any]], gate: Gate | None) -> Any:
        """``call`` up to 1 + max_retries times, waiting as the upstream asks (Retry-After)."""
        gate = gate or ATTEMPT_GATE.get()
        attempt = 0
        last: _Retry | None = None
        while True:
            if gate is not None:
                try:
                    await gate()
                except GenkeepError:
                    # The window is spent: the provider's own answer says most (its Retry-After).
                    if last is not None:
                        raise last.error from None
                    raise
            turned = _TURN.set(gate if isinstance(gate, ProviderTurn) else None)
            try:
                with self._mapped_errors(retrying=attempt < self._max_retries):
                    return await call()
            except _Retry as retry:
                last = retry
                attempt += 1
                wait_s = retry.wait_s
                if not wait_s:  # none, or 0 (as the SDK, which then backs off anyway)
                    backoff = min(_BACKOFF_BASE_S * 2 ** (attempt - 1), _BACKOFF_MAX_S)
                    wait_s = backoff * (1 - 0.25 * random.random())
                await asyncio.sleep(wait_s)
            finally:
                _TURN.reset(turned)

    @contextmanager
    def _mapped_errors(self, *, retrying: bool) -> Iterator[None]:
        """Map the SDK's errors to genkeep's; with ``retrying``, a retryable one is a _Retry."""
        who, error = self._who, self._error
        try:
            yield
        except APITimeoutError as exc:
            timed_out = self._timed_out(
                f"{who} timed out ({self._timeout_s:g}s per attempt, {self._max_retries} retries)",
                reason="timeout",
            )
            if retrying:
                raise _Retry(timed_out, None) from None
            raise timed_out from exc
        except APIConnectionError as exc:
            failed = error(f"could not connect to the {who}", reason="connection")
            if retrying:
                raise _Retry(failed, None) from None
            raise failed from exc
        except APIStatusError as exc:
            status = exc.status_code
            retry_after = retry_after_s(exc.response.headers)
            kind = self._rate_limited if status == 429 else error
            extra: dict[str, Any] = {"upstream_status": status, "request_id": exc.request_id}
            if status == 429:
                extra["retry_after_s"] = retry_after if retry_after is not None else 1.0
            # No chaining: the SDK's message embeds the raw body, which may echo credentials.
            failed = kind(
                f"{who} answered {status}: {self._short_message(exc.body)}",
                reason="status",
                **extra,
            )
            waits_too_long = retry_after is not None and retry_after > MAX_RETRY_AFTER_S
            if retrying and not waits_too_long and (status in _RETRIED_STATUSES or status >= 500):
                raise _Retry(failed, retry_after) from None
            raise failed from None
        except json.JSONDecodeError:
            # The SDK parses any body labelled JSON and lets the decode error through.
            raise error(f"{who} sent a body that is not JSON", reason="bad-body") from None
        except OpenAIError as exc:
            raise error(f"{who} call failed: {type(exc).__name__}", reason="client") from None

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.close()

    def _short_message(self, body: object) -> str:
        """The server's own message on one bounded line, with the key masked if it was echoed."""
        message = body.get("message") if isinstance(body, dict) else body
        text = " ".join(str(message).split()) if message else "no message"
        if self._api_key:
            text = text.replace(self._api_key, "[redacted]")
        return text[:_MAX_DETAIL_CHARS]


def retry_after_s(headers: Any) -> float | None:
    """Seconds the upstream asks to wait: ``retry-after-ms``, else ``Retry-After`` (seconds
    or an HTTP date); None when it says nothing usable."""
    try:
        milliseconds = headers.get("retry-after-ms")
        if milliseconds is not None:
            return max(0.0, float(milliseconds) / 1000)
    except (TypeError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
