"""Counting a mention once when overlapping chunks both found it.

A mention is identified by its class and span ``(class, start, end)``; a relation by its
property, endpoints and span. Unaligned mentions have no span and are identified by their
class and surface (``Entity.key``) instead. Results come out in text order:
``(start, end, class)``, unaligned mentions last.
"""

from __future__ import annotations

from collections.abc import Iterable

from genkeep.extract.model import Alignment, ChunkResult, Entity, Relation

MentionId = tuple[str, int, int] | tuple[str, str]
RelationId = tuple[str, str, str, int | None, int | None]

# When two chunks located the same span differently, the better grounding is kept.
_ALIGNMENT_RANK: dict[Alignment, int] = {"exact": 0, "fuzzy": 1, "unaligned": 2}


def mention_id(entity: Entity) -> MentionId:
    if entity.start is None or entity.end is None:
        return (entity.class_iri, entity.key)
    return (entity.class_iri, entity.start, entity.end)


def relation_id(relation: Relation) -> RelationId:
    return (
        relation.property_iri,
        relation.subject_key,
        relation.object_key,
        relation.start,
        relation.end,
    )


def mention_order(entity: Entity) -> tuple[int, int, int, str, str]:
    if entity.start is None or entity.end is None:
        return (1, 0, 0, entity.class_iri, entity.key)
    return (0, entity.start, entity.end, entity.class_iri, entity.surface)


def relation_order(relation: Relation) -> tuple[int, int, int, str, str, str]:
    aligned = relation.start is not None and relation.end is not None
    return (
        0 if aligned else 1,
        relation.start or 0,
        relation.end or 0,
        relation.property_iri,
        relation.subject_key,
        relation.object_key,
    )


def unique_mentions(entities: Iterable[Entity]) -> list[Entity]:
    """One mention per identity (the best-aligned one), in text order."""
    best: dict[MentionId, Entity] = {}
    for entity in entities:
        ident = mention_id(entity)
        kept = best.get(ident)
        if kept is None or _ALIGNMENT_RANK[entity.alignment] < _ALIGNMENT_RANK[kept.alignment]:
            best[ident] = entity
    return sorted(best.values(), key=mention_order)


def unique_relations(relations: Iterable[Relation]) -> list[Relation]:
    """One relation per identity, in text order."""
    unique = {relation_id(relation): relation for relation in relations}
    return sorted(unique.values(), key=relation_order)


def merge_chunk_results(results: Iterable[ChunkResult]) -> ChunkResult:
    """The results of consecutive chunks as one result, each overlap counted once."""
    entities: list[Entity] = []
    relations: list[Relation] = []
    for result in results:
        entities.extend(result.entities)
        relations.extend(result.relations)
    return ChunkResult(entities=unique_mentions(entities), relations=unique_relations(relations))


class OverlapWindow:
    """Drops mentions an earlier batch already gave, remembering only what may recur.

    A batch whose first chunk starts at ``start`` cannot repeat a span that starts before it,
    and starts only grow, so older spans are forgotten: memory is bounded by about one batch.
    """

    def __init__(self) -> None:
        self._spans: dict[tuple[str, int, int], None] = {}
        self._low = -1

    def admit(self, start: int, entities: Iterable[Entity]) -> tuple[list[Entity], int]:
        """The aligned mentions not seen before (in the given order) and how many were dropped.

        Unaligned mentions pass through untouched: without a span they cannot be matched.
        """
        if start < self._low:
            raise ValueError(f"batches out of text order: start {start} after {self._low}")
        if start > self._low:
            self._low = start
            self._spans = {span: None for span in self._spans if span[1] >= start}
        admitted: list[Entity] = []
        dropped = 0
        for entity in entities:
            if entity.start is None or entity.end is None:
                admitted.append(entity)
                continue
            span = (entity.class_iri, entity.start, entity.end)
            if span in self._spans:
                dropped += 1
                continue
            self._spans[span] = None
            admitted.append(entity)
        return admitted, dropped
