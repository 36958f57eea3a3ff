"""The gate every upstream attempt of a model call passes (``openai_client.ChatClient``):
for a generation, the prompt's attempt window before the attempt; for every call, the
provider's limit as each attempt's request goes out, retries included. The claim protocol
sets a generation's for the call it leads (a context variable carries it to the client through
any backend); the LLM extractor passes its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass

from genkeep.config import GeneratorProfile
from genkeep.db.upstream_windows import UpstreamWindows
from genkeep.errors import UpstreamRateLimited
from genkeep.generate.limits import ProviderLimiter

# Awaited before every upstream attempt; raises to refuse it (a limit, a spent window).
Gate = Callable[[], Awaitable[None]]
ATTEMPT_GATE: ContextVar[Gate | None] = ContextVar("genkeep_attempt_gate", default=None)


@dataclass(frozen=True, slots=True)
class ProviderTurn:
    """Admits each upstream attempt of one model call through the provider's limit only:
    the gate of a call with no prompt window (the LLM extractor's)."""

    limiter: ProviderLimiter
    profile_name: str
    profile: GeneratorProfile
    tokens: int

    async def __call__(self) -> None:
        return None

    async def turn(self) -> float:
        """The provider's limit, waited for once the request is built, just before it is
        sent: what the SDK does first (its first call imports and connects) is not spent
        between the admission and the provider. When the admission was asked."""
        return await self.limiter.acquire_for(self.profile_name, self.profile, self.tokens)

    def late(self, asked: float) -> bool:
        """Whether the call admitted when ``asked`` would now reach the provider too late."""
        return self.limiter.late(asked)


@dataclass(frozen=True, slots=True)
class AttemptGate(ProviderTurn):
    """Admits one upstream attempt of one generation, or raises ``UpstreamRateLimited``."""

    windows: UpstreamWindows
    prompt_id: str | None  # None: nothing stored (no-store), so no window to count in
    window_s: float
    most: int

    async def __call__(self) -> None:
        """The prompt's attempt window: raises if it is spent."""
        if self.prompt_id is not None:
            refused = await self.windows.admit(self.prompt_id, self.window_s, self.most)
            if refused is not None:
                raise UpstreamRateLimited(
                    f"the provider is rate limiting this prompt; {self.most} attempts were "
                    f"made in the last {self.window_s:g}s",
                    retry_after_s=refused,
                )
