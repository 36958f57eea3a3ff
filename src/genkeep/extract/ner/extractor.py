"""The ``ner`` extractor: named mentions first, class words as a fallback, cued relations.

Per chunk: spaCy finds named mentions, completed and retyped by the words around them
(``spans``); each name takes one class within the chunk, from a class or kind word that
describes it or else from its entity type's mapped class (``classes``, ``kinds``,
``mapping``). A short name is the full name mentioned before it ("Maria" is "Maria Okafor").
Class words the label matcher finds outside named mentions stay, as the builtin extractor
gives them. Relations come from the parse, through references too (``relate``); URL and
e-mail values from the property words. Deterministic: the same chunk gives the same result,
so a resumed run writes the same bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
from dataclasses import dataclass
from typing import Any

from genkeep.errors import ManifestMismatch
from genkeep.extract.builtin import BuiltinExtractor
from genkeep.extract.index import OntologyIndex
from genkeep.extract.model import Chunk, ChunkResult, Entity, OntologyIndexLike, Relation
from genkeep.extract.ner import kinds as kind_words
from genkeep.extract.ner import pipeline, relate
from genkeep.extract.ner.classes import Words, decide, norm
from genkeep.extract.ner.kinds import Kinds
from genkeep.extract.ner.mapping import Mapping, automatic, with_overrides
from genkeep.extract.ner.relate import Mention
from genkeep.extract.ner.relations import (
    PropertyCues,
    property_cues,
    value_properties,
)
from genkeep.extract.ner.spans import name_spans
from genkeep.extract.ontology import Ontology

_PAIR_WINDOW = 12


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What one ontology gives the extractor: the mapping and the properties' cues."""

    mapping: Mapping
    kinds: Kinds
    cues: list[PropertyCues]
    urls: list[PropertyCues]
    emails: list[PropertyCues]


class NerExtractor:
    """spaCy named entities typed by the ontology; see the module docstring."""

    name: str = "genkeep-ner"
    version: str = "2"  # 2: kind words, references, the parse without lemmas

    def __init__(
        self,
        model: str = pipeline.DEFAULT_MODEL,
        overrides: dict[str, str | None] | None = None,
        *,
        pinned: Mapping | None = None,
    ) -> None:
        self.model = model
        self.overrides = dict(overrides or {})
        self._pinned = pinned
        self._prepared: tuple[OntologyIndex, _Prepared] | None = None
        self._lock = threading.Lock()

    @property
    def nlp(self) -> Any:
        return pipeline.load(self.model)

    async def extract(self, chunk: Chunk, index: OntologyIndexLike) -> ChunkResult:
        # Tens of milliseconds of CPU per chunk: off the event loop.
        return await asyncio.to_thread(self.extract_now, chunk, index)

    def for_owner(self, owner_id: str) -> NerExtractor:
        return self  # nothing it keeps comes from an owner's text

    # --- the run's manifest -----------------------------------------------------------

    def mapping_for(self, ontology: Ontology) -> Mapping:
        if self._pinned is not None:
            return self._pinned
        return with_overrides(automatic(ontology), self.overrides, ontology)

    def pin(self, index: OntologyIndex) -> tuple[str, bytes]:
        """(the version a run records, the record of the pipeline and mapping it used)."""
        record = {
            "pipeline": pipeline.describe(self.nlp),
            "mapping": self.mapping_for(index.ontology).record(),
        }
        data = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
        return f"{self.version}.{hashlib.sha256(data).hexdigest()[:24]}", data

    def pinned(self, version: str, record: bytes) -> NerExtractor:
        """This extractor mapping as ``record`` says; ManifestMismatch if it cannot."""
        if hashlib.sha256(record).hexdigest()[:24] != version.partition(".")[2]:
            raise ManifestMismatch("the run's ner mapping record does not match its version")
        body = json.loads(record)
        have = pipeline.describe(self.nlp)
        if body["pipeline"] != have:
            raise ManifestMismatch(
                f"the run was extracted with the spaCy pipeline {body['pipeline']}, this "
                f"genkeep has {have}; start a new run"
            )
        return NerExtractor(self.model, pinned=Mapping.from_record(body["mapping"]))

    # --- extraction -------------------------------------------------------------------

    def extract_now(self, chunk: Chunk, index: OntologyIndexLike) -> ChunkResult:
        """``extract`` without the coroutine, for benchmarks and evaluation."""
        if not isinstance(index, OntologyIndex):
            return BuiltinExtractor().extract_now(chunk, index)
        prepared = self._prepare(index)
        with self._lock:  # one document at a time through a shared pipeline
            doc = self.nlp(chunk.text)
        words = index.matcher.find(chunk.text)
        described = Words(self._class_words_by_token(doc, words), prepared.kinds)
        exact = {(m.start, m.end) for m in words}
        mentions = self._named(doc, chunk, index, prepared, described, exact)
        taken = [(m.entity.start, m.entity.end) for m in mentions]
        for match in words:
            start, end = chunk.start + match.start, chunk.start + match.end
            if any(s is not None and e is not None and s < end and start < e for s, e in taken):
                continue  # a word inside a name ("Acme Bus Company"): the name says it
            span = doc.char_span(match.start, match.end, alignment_mode="expand")
            if span is None:
                continue
            for class_iri in match.classes:
                entity = Entity(class_iri, chunk.text[match.start : match.end], start, end)
                mentions.append(Mention(entity, span.root, False))
        mentions.sort(key=lambda m: (m.entity.start or 0, m.entity.end or 0, m.entity.class_iri))
        person = prepared.mapping.class_for("PERSON")
        relations = relate.relations(doc, mentions, index.ontology, prepared.cues, person)
        relations += self._values(doc, chunk, mentions, index.ontology, prepared)
        mentions.sort(key=lambda m: (m.entity.start or 0, m.entity.end or 0, m.entity.class_iri))
        return ChunkResult([m.entity for m in mentions], relations)

    def _prepare(self, index: OntologyIndex) -> _Prepared:
        if self._prepared is None or self._prepared[0] is not index:
            cues = property_cues(index.ontology)
            prepared = _Prepared(
                self.mapping_for(index.ontology),
                kind_words.resolve(index.ontology),
                cues,
                value_properties(cues, email=False),
                value_properties(cues, email=True),
            )
            self._prepared = (index, prepared)
        return self._prepared[1]

    @staticmethod
    def _class_words_by_token(doc: Any, words: list[Any]) -> dict[int, tuple[str, ...]]:
        """Token index of a class word's head -> the classes it names."""
        found: dict[int, tuple[str, ...]] = {}
        for match in words:
            span = doc.char_span(match.start, match.end, alignment_mode="expand")
            if span is not None:
                found[span.root.i] = match.classes
        return found

    def _named(
        self,
        doc: Any,
        chunk: Chunk,
        index: OntologyIndex,
        prepared: _Prepared,
        words: Words,
        words_at: set[tuple[int, int]],
    ) -> list[Mention]:
        mapping = prepared.mapping
        spans = name_spans(doc, words_at)
        decided = decide(spans, words, mapping)
        ontology = index.ontology
        mentions: list[Mention] = []
        full_names: list[tuple[list[str], str, str]] = []  # tokens, name, class
        alone: set[str] = set()  # names met on their own before any longer name held them
        person = mapping.class_for("PERSON")
        for ent, _ in spans:
            text = ent.text
            tokens = [t.lower_ for t in ent]
            class_iri = decided.get(norm(text))
            name: str | None = None
            for full_tokens, full_name, full_class in reversed(full_names):
                inside = len(full_tokens) > len(tokens) and tokens in (
                    full_tokens[: len(tokens)],
                    full_tokens[-len(tokens) :],
                )
                # "Maria" is "Maria Okafor"; "the Mediterranean" the "Mediterranean Sea" (a
                # kind of what it was typed), unless the short name stood for itself before.
                fits = full_class in (class_iri, person) or (
                    class_iri is not None and ontology.is_subclass_of(full_class, class_iri)
                )
                if inside and fits and norm(text) not in alone:
                    name, class_iri = full_name, full_class
                    break
            if class_iri is None:
                continue
            if name is None:
                alone.add(norm(text))
                if len(tokens) > 1:
                    full_names.append((tokens, text, class_iri))
            start = chunk.start + ent.start_char
            entity = Entity(class_iri, text, start, start + len(text), name=name)
            mentions.append(Mention(entity, ent.root, True))
        mentions += _repeated(doc, chunk, mentions, full_names, person)
        return mentions

    def _values(
        self,
        doc: Any,
        chunk: Chunk,
        mentions: list[Mention],
        ontology: Ontology,
        prepared: _Prepared,
    ) -> list[Relation]:
        found: list[Relation] = []
        for token in doc:
            email = bool(token.like_email)
            if not (email or token.like_url):
                continue
            props = prepared.emails if email else prepared.urls
            value = token.text.rstrip(".,;:)")
            subjects = [m for m in mentions if m.named and m.root.sent.start == token.sent.start]
            subjects = [m for m in subjects if m.root.i < token.i] or subjects
            for subject in sorted(subjects, key=lambda m: abs(m.root.i - token.i)):
                cls = subject.entity.class_iri
                fitting = [
                    c for c in props if not c.prop.domain or ontology.fits(cls, c.prop.domain)
                ]
                if fitting:
                    prop = fitting[0].prop
                    start = chunk.start + token.idx
                    first = min(subject.entity.start or start, start)
                    cue = "email" if email else "url"
                    ranges = sorted(r for r in prop.range if r in ontology.classes)
                    if prop.kind == "object" and ranges:
                        # A page is a thing of the range's class ("homepage" -> Document).
                        page = Entity(ranges[0], value, start, start + len(value))
                        mentions.append(Mention(page, token, True))
                        found.append(
                            Relation(
                                prop.iri,
                                subject.entity.key,
                                page.key,
                                first,
                                start + len(value),
                                cue=cue,
                            )
                        )
                    else:
                        found.append(
                            Relation(
                                prop.iri,
                                subject.entity.key,
                                value,
                                first,
                                start + len(value),
                                cue=cue,
                                literal=True,
                            )
                        )
                    break
        return found


def _repeated(
    doc: Any,
    chunk: Chunk,
    mentions: list[Mention],
    full_names: list[tuple[list[str], str, str]],
    person: str | None,
) -> list[Mention]:
    """Later mentions the model missed: a full name again, or a person's first or last name.

    The model tags "Maria" as a nationality once, or not at all; the name it found before
    says who she is.
    """
    taken = [(m.entity.start or 0, m.entity.end or 0) for m in mentions]
    wanted: dict[str, tuple[str, str, int]] = {}  # surface -> (name, class, first offset)
    for m in mentions:
        if m.named:
            wanted.setdefault(
                m.entity.surface,
                (m.entity.name or m.entity.surface, m.entity.class_iri, m.entity.start or 0),
            )
    for _, name, class_iri in full_names:
        if class_iri == person:
            for part in name.split()[:1] + name.split()[-1:]:
                if len(part) > 2 and part[:1].isupper():
                    first = wanted.get(name, ("", "", 0))[2]
                    wanted.setdefault(part, (name, class_iri, first))
    found: list[Mention] = []
    for surface, (name, class_iri, first) in sorted(wanted.items()):
        pattern = re.compile(rf"(?<![\w@./]){re.escape(surface)}(?![\w@])")
        for found_at in pattern.finditer(chunk.text):
            start, end = chunk.start + found_at.start(), chunk.start + found_at.end()
            if start < first or any(s < end and start < e for s, e in taken):
                continue
            span = doc.char_span(found_at.start(), found_at.end())
            if span is None:
                continue
            taken.append((start, end))
            alias = None if name == surface else name
            found.append(
                Mention(Entity(class_iri, surface, start, end, name=alias), span.root, True)
            )
    return found
