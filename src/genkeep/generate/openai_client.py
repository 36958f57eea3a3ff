"""The official OpenAI SDK, as the generator and the LLM extractor both use it: one client
set-up (timeouts, the SDK's retries with backoff on 429/5xx) and one error mapping whose
messages never carry a key."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from openai import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AsyncOpenAI,
    OpenAIError,
)

from genkeep.errors import ConfigurationError, GenkeepError

_MAX_DETAIL_CHARS = 200
# Sent as the bearer token to a server at GENKEEP_OPENAI_BASE_URL when no key is set.
KEYLESS = "no-key"


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
    ) -> None:
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._max_retries = max_retries
        self._who = who
        self._error = error
        try:
            self._client = AsyncOpenAI(
                base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=max_retries
            )
        except OpenAIError as exc:
            if base_url is None:
                # Missing credentials: the message names settings, never a key value.
                raise ConfigurationError(
                    f"{purpose} needs GENKEEP_OPENAI_API_KEY (or OPENAI_API_KEY)"
                ) from exc
            # A local server (Ollama, vLLM, llama.cpp) asks for no key; the SDK insists on one.
            self._client = AsyncOpenAI(
                base_url=base_url, api_key=KEYLESS, timeout=timeout_s, max_retries=max_retries
            )

    async def complete(self, **request: Any) -> Any:
        """``chat.completions.create(**request)``, with every failure as one clear error."""
        with self._mapped_errors():
            return await self._client.chat.completions.create(**request)

    async def embed(self, **request: Any) -> Any:
        """``embeddings.create(**request)``, failures as in ``complete``."""
        with self._mapped_errors():
            return await self._client.embeddings.create(**request)

    async def stream(self, **request: Any) -> AsyncIterator[Any]:
        """The chunks of a streamed ``chat.completions.create``; failures as in ``complete``."""
        received = 0
        with self._mapped_errors():
            chunks = await self._client.chat.completions.create(stream=True, **request)
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

    @contextmanager
    def _mapped_errors(self) -> Iterator[None]:
        who, error = self._who, self._error
        try:
            yield
        except APITimeoutError as exc:
            raise error(
                f"{who} timed out ({self._timeout_s:g}s per attempt, {self._max_retries} retries)",
                reason="timeout",
            ) from exc
        except APIConnectionError as exc:
            raise error(f"could not connect to the {who}", reason="connection") from exc
        except APIStatusError as exc:
            # No chaining: the SDK's message embeds the raw body, which may echo credentials.
            raise error(
                f"{who} answered {exc.status_code}: {self._short_message(exc.body)}",
                reason="status",
                upstream_status=exc.status_code,
                request_id=exc.request_id,
            ) from None
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
