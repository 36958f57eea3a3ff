"""The task catalogue: kinds, their payloads and gate rules, read by api/ and worker/."""

from genkeep.jobs.catalogue import BUILTIN_KINDS, Catalogue, TaskKind, load_catalogue

__all__ = ["BUILTIN_KINDS", "Catalogue", "TaskKind", "load_catalogue"]
