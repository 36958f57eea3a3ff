"""The values extraction passes around: chunks, grounded entities and relations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

# How an extraction's span was located in the original text.
Alignment = Literal["exact", "fuzzy", "unaligned"]


@dataclass(frozen=True, slots=True)
class ChunkParams:
    """Chunking parameters, stored with a run when it starts (I7)."""

    size: int = 4000
    overlap: int = 200
    batch_size: int = 8


@dataclass(frozen=True, slots=True)
class Chunk:
    """A slice of the original text: ``text == source[start:end]``."""

    index: int
    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class Entity:
    """A typed mention grounded in the original text (``source[start:end] == surface``).

    ``start``/``end`` are None only when ``alignment`` is "unaligned".
    """

    class_iri: str
    surface: str
    start: int | None
    end: int | None
    alignment: Alignment = "exact"
    # The full name a short mention stands for ("Maria" for "Maria Okafor"); None: the surface.
    name: str | None = None

    @property
    def key(self) -> str:
        """Identity of the entity across chunks and batches: its class and normalized name."""
        name = self.surface if self.name is None else self.name
        return f"{self.class_iri}|{' '.join(name.casefold().split())}"


@dataclass(frozen=True, slots=True)
class Relation:
    """A property between two entities of one sentence, as their keys.

    With ``literal`` set the object is that value (a URL, an e-mail address), not an entity:
    ``object_key`` holds the value too. ``cue`` is the word of the text the relation was read
    from; None when only the domain and range of the property suggested it.
    """

    property_iri: str
    subject_key: str
    object_key: str
    start: int | None
    end: int | None
    cue: str | None = None
    literal: bool = False


@dataclass(frozen=True, slots=True)
class ChunkResult:
    entities: list[Entity] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)


class Extractor(Protocol):
    """Finds entities and relations in one chunk; offsets are into the original text."""

    name: str
    version: str

    async def extract(self, chunk: Chunk, index: OntologyIndexLike) -> ChunkResult: ...

    def for_owner(self, owner_id: str) -> Extractor:
        """This extractor as one owner's runs use it (state such as caches kept per owner)."""
        ...


class OntologyIndexLike(Protocol):
    """What extractors need from an ontology index (see ``genkeep.extract.index``)."""

    def classes_for_label(self, label: str) -> list[str]: ...

    def labels(self) -> list[tuple[str, str]]:
        """(label, class iri) pairs, every label and synonym of every class."""
        ...

    def properties_between(self, subject_class: str, object_class: str) -> list[str]: ...
