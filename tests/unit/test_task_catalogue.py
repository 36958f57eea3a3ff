"""The task catalogue: built-in kinds from their payload models, extensions added explicitly."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from genkeep.db.models import Job
from genkeep.errors import BadInput, ConfigurationError, GateClosed
from genkeep.jobs import BUILTIN_KINDS, Catalogue, TaskKind, load_catalogue
from genkeep.worker.context import TaskContext, TaskOutput
from genkeep.worker.registry import BUILTIN_HANDLERS, load_handlers


class Resize(BaseModel):
    width: int


async def resize(context: TaskContext) -> TaskOutput:
    return TaskOutput()


@pytest.fixture
def extension() -> Iterator[types.ModuleType]:
    """An extension module, importable by name as GENKEEP_TASK_MODULES names it."""
    module = types.ModuleType("genkeep_test_extension")
    module.TASK_KINDS = [TaskKind("resize", Resize)]  # type: ignore[attr-defined]
    module.TASK_HANDLERS = {"resize": resize}  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        yield module
    finally:
        del sys.modules[module.__name__]


def test_every_builtin_kind_has_a_payload_model_and_a_handler() -> None:
    catalogue = Catalogue()
    assert catalogue.names() == ["export", "extract", "generate"]
    assert all(model is not None for model in catalogue.payload_models().values())
    assert sorted(BUILTIN_HANDLERS) == catalogue.names() == sorted(k.name for k in BUILTIN_KINDS)


def test_a_payload_is_checked_by_its_model_and_normalized() -> None:
    catalogue = Catalogue()
    assert catalogue.validate("generate", {"prompt": "hi", "profile": None}) == {"prompt": "hi"}
    with pytest.raises(BadInput, match="invalid generate payload"):
        catalogue.validate("generate", {"prompt": 1})
    with pytest.raises(BadInput, match="overlap must be smaller than chunk_size"):
        catalogue.validate(
            "extract", {"text": "t", "ontology": "o", "chunk_size": 10, "overlap": 10}
        )
    with pytest.raises(BadInput, match="unknown task kind 'nope'; known: export, extract"):
        catalogue.validate("nope", {})


def test_the_export_gate_closes_on_unconfirmed_sections() -> None:
    catalogue = Catalogue()
    job = Job(title="t", sections=[{"title": "a", "content": "b"}], sections_confirmed=False)
    job.schema_dirty = False
    with pytest.raises(GateClosed, match="not confirmed"):
        catalogue.accept(job, "export", {"formats": ["md"]})
    # A stored result needs no confirmed sections; the other kinds have no gate.
    assert catalogue.accept(job, "export", {"formats": ["md"], "result_id": "r"})
    assert catalogue.accept(job, "generate", {"prompt": "p"}) == {"prompt": "p"}
    job.sections_confirmed = True
    assert catalogue.accept(job, "export", {"formats": ["md"]}) == {"formats": ["md"]}


def test_an_extension_adds_its_kinds_and_handlers(extension: types.ModuleType) -> None:
    catalogue = load_catalogue([extension.__name__])
    assert "resize" in catalogue and "resize" not in Catalogue()
    assert catalogue.payload_models()["resize"] is Resize
    assert catalogue.validate("resize", {"width": 3}) == {"width": 3}
    with pytest.raises(BadInput, match="invalid resize payload"):
        catalogue.validate("resize", {})
    assert load_handlers([extension.__name__])["resize"] is resize
    assert "resize" not in load_handlers()


def test_a_kind_without_a_model_takes_any_object() -> None:
    payload: dict[str, Any] = {"anything": [1, {"x": None}]}
    assert Catalogue([TaskKind("free")]).validate("free", payload) == payload


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"TASK_KINDS": [TaskKind("export")]}, "task kind 'export' is declared twice"),
        ({"TASK_KINDS": ["resize"]}, "TASK_KINDS holds 'resize', not a TaskKind"),
        ({"TASK_KINDS": None}, "declares no TASK_KINDS"),
    ],
)
def test_a_wrong_extension_is_a_configuration_error(
    extension: types.ModuleType, change: dict[str, Any], message: str
) -> None:
    for name, value in change.items():
        if value is None:
            delattr(extension, name)
        else:
            setattr(extension, name, value)
    with pytest.raises(ConfigurationError, match=message):
        load_catalogue([extension.__name__])


def test_a_handler_declared_twice_or_a_missing_module_is_a_configuration_error(
    extension: types.ModuleType,
) -> None:
    extension.TASK_HANDLERS = {"generate": resize}  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match="task kind 'generate' has two handlers"):
        load_handlers([extension.__name__])
    with pytest.raises(ConfigurationError, match="cannot be imported"):
        load_catalogue(["genkeep_no_such_module"])
