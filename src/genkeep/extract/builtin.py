"""The offline extractor: ontology labels found in the text, related within a sentence.

Entities are label matches (rules in ``genkeep.extract.index``), one per class the label
names, with offsets into the original text. A relation links two entities of one sentence,
subject first, when a property's domain fits the subject's class and its range the
object's; each (subject, property, object) is reported once per chunk.

Chunks should be cut at whitespace: a label touching a chunk's edge is taken as whole.
"""

from __future__ import annotations

import re
from bisect import bisect_right

from genkeep.extract.index import LabelMatcher, OntologyIndex
from genkeep.extract.model import Chunk, ChunkResult, Entity, OntologyIndexLike, Relation

# Sentence ends: terminal punctuation (then closing quotes or brackets) before whitespace,
# a blank line, or a line that starts a list item or a heading. One leading character
# class lets the regex engine skip quickly to candidates.
_BREAK = re.compile(
    r"""[.!?…\n](?:"""
    r"""(?<=\n)(?:[^\S\n]*\n\s*|(?=[^\S\n]*(?:[-*+•][^\S\n]|\d+[.)][^\S\n]|\#)))"""
    r"""|(?<!\n)[.!?…]*["'”’)\]]*(?=\s))"""
)
_NEXT_VISIBLE = re.compile(r"\s*(\S)")
# A period after these does not end a sentence.
_ABBREVIATIONS = frozenset(
    {"dr", "mr", "mrs", "ms", "prof", "st", "mt", "no", "nr", "vs", "cf", "eg", "ie", "approx"}
)
# Candidate objects per subject within a sentence; bounds the cost of list-like "sentences".
_PAIR_WINDOW = 32


def sentence_starts(text: str) -> list[int]:
    """Offsets where a sentence starts after the first one, in increasing order."""
    starts: list[int] = []
    for m in _BREAK.finditer(text):
        if m.group().startswith("\n") or _ends_sentence(text, m.start(), m.end()):
            starts.append(m.end())
    return starts


def _ends_sentence(text: str, start: int, end: int) -> bool:
    if text[start] == ".":
        word_start = start
        while word_start > 0 and text[word_start - 1].isalnum():
            word_start -= 1
        word = text[word_start:start]
        # Initials ("J. Smith") and known abbreviations ("St. Anne's").
        if (len(word) == 1 and word.isalpha()) or word.lower() in _ABBREVIATIONS:
            return False
    nxt = _NEXT_VISIBLE.match(text, end)
    return nxt is None or not nxt.group(1).islower()


class BuiltinExtractor:
    """Label matching against the ontology: offline, deterministic, grounded offsets."""

    name: str = "genkeep-builtin"
    version: str = "1"

    def __init__(self) -> None:
        self._foreign: tuple[OntologyIndexLike, LabelMatcher] | None = None

    async def extract(self, chunk: Chunk, index: OntologyIndexLike) -> ChunkResult:
        # CPU only and fast (megabytes per second), so it runs inline on the loop.
        return self.extract_now(chunk, index)

    def for_owner(self, owner_id: str) -> BuiltinExtractor:
        return self  # it keeps nothing that comes from an owner's text

    def extract_now(self, chunk: Chunk, index: OntologyIndexLike) -> ChunkResult:
        """``extract`` without the coroutine, for thread pools and benchmarks."""
        entities = [
            Entity(
                class_iri, chunk.text[m.start : m.end], chunk.start + m.start, chunk.start + m.end
            )
            for m in self._matcher(index).find(chunk.text)
            for class_iri in m.classes
        ]
        return ChunkResult(entities, self._relations(chunk, entities, index))

    def _matcher(self, index: OntologyIndexLike) -> LabelMatcher:
        if isinstance(index, OntologyIndex):
            return index.matcher
        # Another index implementation: compile its labels once, while it stays in use.
        if self._foreign is None or self._foreign[0] is not index:
            self._foreign = (index, LabelMatcher(index.labels()))
        return self._foreign[1]

    def _relations(
        self, chunk: Chunk, entities: list[Entity], index: OntologyIndexLike
    ) -> list[Relation]:
        starts = [chunk.start + offset for offset in sentence_starts(chunk.text)]
        sentences: dict[int, list[tuple[Entity, str, int, int]]] = {}
        for entity in entities:
            assert entity.start is not None and entity.end is not None
            sentence = sentences.setdefault(bisect_right(starts, entity.start), [])
            sentence.append((entity, entity.key, entity.start, entity.end))
        between: dict[tuple[str, str], list[str]] = {}
        relations: list[Relation] = []
        seen: set[tuple[str, str, str]] = set()
        for members in sentences.values():
            for i, (subject, subject_key, subject_start, subject_end) in enumerate(members):
                for obj, obj_key, obj_start, obj_end in members[i + 1 : i + 1 + _PAIR_WINDOW]:
                    if obj_start < subject_end or obj_key == subject_key:
                        continue  # the same mention under another class, or itself again
                    pair = (subject.class_iri, obj.class_iri)
                    props = between.get(pair)
                    if props is None:
                        props = between[pair] = index.properties_between(*pair)
                    for prop in props:
                        triple = (subject_key, prop, obj_key)
                        if triple not in seen:
                            seen.add(triple)
                            relations.append(
                                Relation(prop, subject_key, obj_key, subject_start, obj_end)
                            )
        return relations
