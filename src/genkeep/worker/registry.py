"""Task handlers by kind; open for extension (the extraction workflow adds ``extract``)."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from genkeep.errors import BadInput
from genkeep.worker.context import TaskContext, TaskOutput

Handler = Callable[[TaskContext], Awaitable[TaskOutput]]
Validator = Callable[[dict[str, Any]], dict[str, Any]]

_handlers: dict[str, tuple[Handler, Validator]] = {}
_payload_models: dict[str, type[BaseModel] | None] = {}


def register(
    kind: str, validator: Validator, payload_model: type[BaseModel] | None = None
) -> Callable[[Handler], Handler]:
    """Register ``handler`` for tasks of ``kind``; ``validator`` checks payloads at submit.

    ``payload_model`` documents the payload in the OpenAPI document (else: any object).
    """

    def decorate(handler: Handler) -> Handler:
        _handlers[kind] = (handler, validator)
        _payload_models[kind] = payload_model
        return handler

    return decorate


def handler_for(kind: str) -> Handler | None:
    found = _handlers.get(kind)
    return None if found is None else found[0]


def validate_payload(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The normalized payload for ``kind``; BadInput for unknown kinds or bad payloads."""
    found = _handlers.get(kind)
    if found is None:
        raise BadInput(f"unknown task kind {kind!r}; known: {', '.join(sorted(_handlers))}")
    return found[1](payload)


def load_handlers(extra_modules: list[str]) -> None:
    """Import the built-in handlers and any configured extension modules."""
    importlib.import_module("genkeep.worker.export_task")
    importlib.import_module("genkeep.worker.generate_task")
    importlib.import_module("genkeep.worker.extract_task")
    for module in extra_modules:
        importlib.import_module(module)


def known_kinds() -> list[str]:
    return sorted(_handlers)


def payload_models() -> dict[str, type[BaseModel] | None]:
    """Each registered kind with the model its payload is documented by, if any."""
    return {kind: _payload_models.get(kind) for kind in sorted(_handlers)}
