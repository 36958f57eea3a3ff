"""Task handlers by kind: the built-in ones, then those extension modules declare.

An extension module (``GENKEEP_TASK_MODULES``) declares ``TASK_HANDLERS``, a mapping of its
kinds (declared in its ``TASK_KINDS`` for the catalogue, see jobs/catalogue) to handlers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping

from genkeep.errors import ConfigurationError
from genkeep.jobs.catalogue import extension_attribute
from genkeep.worker import export_task, extract_task, generate_task
from genkeep.worker.context import TaskContext, TaskOutput

Handler = Callable[[TaskContext], Awaitable[TaskOutput]]

BUILTIN_HANDLERS: Mapping[str, Handler] = {
    "export": export_task.export,
    "extract": extract_task.extract,
    "generate": generate_task.generate,
}


def load_handlers(modules: Iterable[str] = ()) -> dict[str, Handler]:
    """The built-in handlers and those each extension module declares in ``TASK_HANDLERS``."""
    handlers = dict(BUILTIN_HANDLERS)
    for name in modules:
        declared: Mapping[str, Handler] = extension_attribute(name, "TASK_HANDLERS")
        for kind, handler in declared.items():
            if kind in handlers:
                raise ConfigurationError(f"task kind {kind!r} has two handlers ({name})")
            handlers[kind] = handler
    return handlers
