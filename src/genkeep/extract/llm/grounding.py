"""Grounding an answer: its entities located in the chunk, its relations checked by the ontology."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from genkeep.extract.dedupe import unique_mentions, unique_relations
from genkeep.extract.llm.answer import Answer, AnswerEntity, Vocabulary
from genkeep.extract.model import Alignment, Chunk, ChunkResult, Entity, OntologyIndexLike, Relation


@dataclass(slots=True)
class Grounded:
    """A chunk's result, and what grounding could not keep."""

    result: ChunkResult = field(default_factory=ChunkResult)
    unaligned_entities: int = 0
    dropped_entities: int = 0
    dropped_relations: int = 0


def ground(
    answer: Answer, chunk: Chunk, index: OntologyIndexLike, vocabulary: Vocabulary
) -> Grounded:
    """Entities located in ``chunk``; relations outside their property's domain or range, or
    between entities the answer does not list, are dropped."""
    entities = _entities(answer.entities, chunk, vocabulary)
    relations: list[Relation] = []
    dropped_relations = 0
    for item in answer.relations:
        subject = entities.get((item.subject_class, _words(item.subject)))
        obj = entities.get((item.object_class, _words(item.object)))
        prop = item.property
        if (
            subject is None
            or obj is None
            or prop not in vocabulary.properties
            or prop not in index.properties_between(subject.class_iri, obj.class_iri)
        ):
            dropped_relations += 1
            continue
        relations.append(_relation(prop, subject, obj))
    return Grounded(
        ChunkResult(unique_mentions(entities.values()), unique_relations(relations)),
        unaligned_entities=sum(e.alignment == "unaligned" for e in entities.values()),
        dropped_entities=sum(not e.surface.strip() for e in answer.entities),
        dropped_relations=dropped_relations,
    )


def _entities(
    items: list[AnswerEntity], chunk: Chunk, vocabulary: Vocabulary
) -> dict[tuple[str, str], Entity]:
    """The answer's entities located in the chunk, by (class, whitespace-normalized surface).

    A surface listed twice is grounded once: one mention per entity and chunk.
    """
    found: dict[tuple[str, str], Entity] = {}
    for item in items:
        class_iri, surface = item.class_iri, " ".join(item.surface.split())
        if not surface or class_iri not in vocabulary.classes:
            continue
        ident = (class_iri, _words(surface))
        if ident in found:
            continue
        located = locate(chunk.text, surface)
        if located is None:
            found[ident] = Entity(class_iri, surface, None, None, "unaligned")
            continue
        start, end, alignment = located
        found[ident] = Entity(
            class_iri, chunk.text[start:end], chunk.start + start, chunk.start + end, alignment
        )
    return found


def locate(text: str, surface: str) -> tuple[int, int, Alignment] | None:
    """First occurrence of ``surface`` in ``text``: exact, else ignoring case and spacing.

    Whole-word occurrences are preferred; a match inside a longer word comes last (scripts
    without spaces have no word boundaries).
    """
    parts = surface.split()
    if not parts:
        return None
    exact = re.escape(surface)
    loose = r"\s+".join(re.escape(word) for word in parts)
    attempts: tuple[tuple[str, int, Alignment], ...] = (
        (_whole_word(exact, surface), 0, "exact"),
        (exact, 0, "exact"),
        (_whole_word(loose, surface), re.IGNORECASE, "fuzzy"),
        (loose, re.IGNORECASE, "fuzzy"),
    )
    for pattern, flags, alignment in attempts:
        match = re.search(pattern, text, flags)
        if match is not None:
            return match.start(), match.end(), alignment
    return None


def _whole_word(pattern: str, surface: str) -> str:
    before = r"(?<!\w)" if re.match(r"\w", surface) else ""
    after = r"(?!\w)" if re.search(r"\w$", surface) else ""
    return before + pattern + after


def _words(surface: str) -> str:
    """``surface`` as grounding compares it: case-folded, single-spaced."""
    return " ".join(surface.casefold().split())


def _relation(prop: str, subject: Entity, obj: Entity) -> Relation:
    spans = [(e.start, e.end) for e in (subject, obj) if e.start is not None and e.end is not None]
    aligned = len(spans) == 2
    return Relation(
        prop,
        subject.key,
        obj.key,
        min(s for s, _ in spans) if aligned else None,
        max(e for _, e in spans) if aligned else None,
    )
