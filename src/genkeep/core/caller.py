"""Who a request is for: set once where the owner is decided (``api.deps``), read where its
calls are metered and limited (``generate.metering``), in the same task or its children."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Caller:
    owner_id: str
    key_id: str | None  # None: the default owner, or a trusted gateway's header
    trace_id: str | None


CALLER: ContextVar[Caller | None] = ContextVar("genkeep_caller", default=None)

# Set by a streamed chat's generator call, for the ledger row of that call.
STREAMED: ContextVar[bool] = ContextVar("genkeep_streamed", default=False)
