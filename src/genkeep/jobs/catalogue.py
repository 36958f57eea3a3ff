"""The task kinds a server accepts: a declared table, built-in kinds first, then extensions.

An extension module (``GENKEEP_TASK_MODULES``) declares ``TASK_KINDS``, a list of
:class:`TaskKind`, for the catalogue, and ``TASK_HANDLERS`` for the worker (worker/registry).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from genkeep.db.models import Job
from genkeep.errors import BadInput, ConfigurationError
from genkeep.jobs.gates import export_gate
from genkeep.jobs.payloads import ExportPayload, ExtractPayload, GeneratePayload

Gate = Callable[[Job, dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class TaskKind:
    """A kind of task: its payload's model (None: any JSON object) and the gate it must pass."""

    name: str
    payload: type[BaseModel] | None = None
    gate: Gate | None = None

    def validate(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The normalized payload; BadInput when the model refuses it."""
        if self.payload is None:
            return payload
        try:
            checked = self.payload.model_validate(payload)
        except ValidationError as exc:
            message = f"invalid {self.name} payload: {exc}".replace("\n", " ")
            raise BadInput(message) from None
        return checked.model_dump(exclude_none=True)


BUILTIN_KINDS = (
    TaskKind("export", ExportPayload, export_gate),
    TaskKind("extract", ExtractPayload),
    TaskKind("generate", GeneratePayload),
)


class Catalogue:
    """Task kinds by name; a name is declared once."""

    def __init__(self, kinds: Iterable[TaskKind] = BUILTIN_KINDS) -> None:
        self._kinds: dict[str, TaskKind] = {}
        for kind in kinds:
            self.add(kind)

    def add(self, kind: TaskKind) -> None:
        if kind.name in self._kinds:
            raise ConfigurationError(f"task kind {kind.name!r} is declared twice")
        self._kinds[kind.name] = kind

    def names(self) -> list[str]:
        return sorted(self._kinds)

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def payload_models(self) -> dict[str, type[BaseModel] | None]:
        """Each kind with the model its payload is documented by, if any."""
        return {name: self._kinds[name].payload for name in self.names()}

    def validate(self, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The normalized payload for kind ``name``; BadInput for unknown kinds or bad payloads."""
        kind = self._kinds.get(name)
        if kind is None:
            raise BadInput(f"unknown task kind {name!r}; known: {', '.join(self.names())}")
        return kind.validate(payload)

    def accept(self, job: Job, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The normalized payload of a task submitted on ``job``; GateClosed if a gate refuses."""
        checked = self.validate(name, payload)
        gate = self._kinds[name].gate
        if gate is not None:
            gate(job, checked)
        return checked


def extension_attribute(module_name: str, attribute: str) -> Any:
    """``attribute`` of the extension module ``module_name``; ConfigurationError if missing."""
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"task module {module_name!r} cannot be imported: {exc}") from exc
    if not hasattr(module, attribute):
        raise ConfigurationError(f"task module {module_name!r} declares no {attribute}")
    return getattr(module, attribute)


def load_catalogue(modules: Iterable[str] = ()) -> Catalogue:
    """The built-in kinds and those each extension module declares in ``TASK_KINDS``."""
    catalogue = Catalogue()
    for name in modules:
        for kind in extension_attribute(name, "TASK_KINDS"):
            if not isinstance(kind, TaskKind):
                raise ConfigurationError(f"{name}.TASK_KINDS holds {kind!r}, not a TaskKind")
            catalogue.add(kind)
    return catalogue
