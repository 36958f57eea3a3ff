"""The ``ner`` extractor: named mentions first, class words as a fallback, cued relations.

Per chunk: spaCy finds named mentions; each is typed by a class word that describes it
("Varnholm is a city", "the river Ise", "Acme, a company") or else by the entity type's
mapped class (``mapping``); one name keeps one class within the chunk. A short name is the
full name mentioned before it ("Maria" is "Maria Okafor"). Class words the label matcher
finds outside named mentions stay, as the builtin extractor gives them. Relations and URL
or e-mail values come from the parse (``relations``). Deterministic: the same chunk gives
the same result, so a resumed run writes the same bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from genkeep.errors import ManifestMismatch
from genkeep.extract.builtin import BuiltinExtractor
from genkeep.extract.index import OntologyIndex
from genkeep.extract.model import Chunk, ChunkResult, Entity, OntologyIndexLike, Relation
from genkeep.extract.ner import pipeline
from genkeep.extract.ner.countries import COUNTRIES
from genkeep.extract.ner.mapping import TYPE_CUES, Mapping, automatic, with_overrides
from genkeep.extract.ner.relations import (
    PropertyCues,
    path_between,
    property_cues,
    stems_of,
    value_properties,
)
from genkeep.extract.ontology import Ontology

_DETERMINERS = frozenset({"the", "a", "an", "this", "that"})
_PAIR_WINDOW = 12
_PLACE_TYPES = ("GPE", "LOC", "FAC")
_SCHOOL_WORDS = frozenset({"university", "college", "school", "academy", "polytechnic"})
_PREPOSITIONS = frozenset({"in", "at", "of", "on", "into", "through", "within", "about", "by"})


@dataclass(slots=True)
class _Mention:
    entity: Entity
    root: Any  # spaCy Token: the span's syntactic head
    named: bool


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What one ontology gives the extractor: the mapping and the properties' cues."""

    mapping: Mapping
    cues: list[PropertyCues]
    urls: list[PropertyCues]
    emails: list[PropertyCues]


class NerExtractor:
    """spaCy named entities typed by the ontology; see the module docstring."""

    name: str = "genkeep-ner"
    version: str = "1"

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
        described = self._class_words_by_token(doc, words)
        exact = {(m.start, m.end) for m in words}
        mentions = self._named(doc, chunk, prepared.mapping, described, exact)
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
                mentions.append(_Mention(entity, span.root, False))
        mentions.sort(key=lambda m: (m.entity.start or 0, m.entity.end or 0, m.entity.class_iri))
        relations = self._relations(mentions, index.ontology, prepared)
        relations += self._values(doc, chunk, mentions, index.ontology, prepared)
        mentions.sort(key=lambda m: (m.entity.start or 0, m.entity.end or 0, m.entity.class_iri))
        return ChunkResult([m.entity for m in mentions], relations)

    def _prepare(self, index: OntologyIndex) -> _Prepared:
        if self._prepared is None or self._prepared[0] is not index:
            cues = property_cues(index.ontology)
            prepared = _Prepared(
                self.mapping_for(index.ontology),
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
        mapping: Mapping,
        described: dict[int, tuple[str, ...]],
        words_at: set[tuple[int, int]],
    ) -> list[_Mention]:
        spans = _name_spans(doc, words_at)
        # One class per name within the chunk: a class word describing it, else the vote of
        # its mentions' types ("Innsbruck" is a city even where the model said ORG).
        decided: dict[str, str] = {}
        votes: dict[str, Counter[str]] = {}
        for ent, label in spans:
            context = _describing_class(ent, label, described, mapping)
            if context is not None:
                decided.setdefault(_norm(ent.text), context)
            voted = mapping.class_for(label)
            if voted is not None:
                votes.setdefault(_norm(ent.text), Counter())[voted] += 1
        _conjunct_classes(spans, decided)
        for voted_name, counter in votes.items():
            decided.setdefault(voted_name, counter.most_common(1)[0][0])
        mentions: list[_Mention] = []
        full_names: list[tuple[list[str], str, str]] = []  # tokens, name, class
        person = mapping.class_for("PERSON")
        for ent, _ in spans:
            text = ent.text
            tokens = [t.lower_ for t in ent]
            class_iri = decided.get(_norm(text))
            name: str | None = None
            for full_tokens, full_name, full_class in reversed(full_names):
                inside = len(full_tokens) > len(tokens) and tokens in (
                    full_tokens[: len(tokens)],
                    full_tokens[-len(tokens) :],
                )
                if inside and full_class in (class_iri, person):
                    name, class_iri = full_name, full_class
                    break
            if class_iri is None:
                continue
            if name is None and len(tokens) > 1:
                full_names.append((tokens, text, class_iri))
            start = chunk.start + ent.start_char
            entity = Entity(class_iri, text, start, start + len(text), name=name)
            mentions.append(_Mention(entity, ent.root, True))
        mentions += _repeated(doc, chunk, mentions, full_names, person)
        return mentions

    def _relations(
        self, mentions: list[_Mention], ontology: Ontology, prepared: _Prepared
    ) -> list[Relation]:
        relations: list[Relation] = []
        seen: set[tuple[str, str, str]] = set()
        by_sentence: dict[int, list[_Mention]] = {}
        for mention in mentions:
            by_sentence.setdefault(mention.root.sent.start, []).append(mention)
        for members in by_sentence.values():
            for i, a in enumerate(members):
                for b in members[i + 1 : i + 1 + _PAIR_WINDOW]:
                    if a.entity.key == b.entity.key or b.root.i == a.root.i:
                        continue
                    if not (a.named and b.named):
                        continue  # a class word's referent is a guess: no relation on it
                    for relation in _relate(a, b, ontology, prepared.cues):
                        triple = (relation.subject_key, relation.property_iri, relation.object_key)
                        mirror = (relation.object_key, relation.property_iri, relation.subject_key)
                        if triple not in seen and mirror not in seen:
                            seen.add(triple)
                            relations.append(relation)
        return relations

    def _values(
        self,
        doc: Any,
        chunk: Chunk,
        mentions: list[_Mention],
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
                        mentions.append(_Mention(page, token, True))
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


def _name_spans(doc: Any, words_at: set[tuple[int, int]]) -> list[tuple[Any, str]]:
    """The model's named spans, trimmed, with their types refined (see ``_refined``)."""
    spans: list[tuple[Any, str]] = []
    for ent in doc.ents:
        label = ent.label_  # a slice of the span below has none
        if label not in TYPE_CUES:
            continue
        ent = _one_line(ent)
        while len(ent) > 1 and ent[0].lower_ in _DETERMINERS and label != "WORK_OF_ART":
            ent = ent[1:]
        while len(ent) > 1 and (ent[-1].tag_ == "POS" or ent[-1].is_punct):
            ent = ent[:-1]
        proper = any(t.text[:1].isupper() or t.like_num for t in ent)
        if not proper or ent.text.strip() != ent.text or (ent.start_char, ent.end_char) in words_at:
            continue  # a class word the model took for a name ("the LEZ"): the word wins
        spans.append((ent, label))
    spans += _missed(doc, spans)
    spans = [(ent, _unarticled(ent, label)) for ent, label in spans]
    # "Elena Marković" as ORG once, "Marković" as PERSON later: a person.
    people = {ent.text for ent, label in spans if label == "PERSON" and len(ent) == 1}
    return [(ent, _refined(ent, label, people)) for ent, label in spans]


def _unarticled(ent: Any, label: str) -> str:
    if label == "PERSON" and ent.start > 0 and ent.doc[ent.start - 1].lower_ == "the":
        return "LOC"  # "the Rhône": people do not take an article
    return label


def _conjunct_classes(spans: list[tuple[Any, str]], decided: dict[str, str]) -> None:
    """ "the Rhône and the Saône" are of one kind: a name without a class word takes the class
    a class word gave its conjunct."""
    by_root = {ent.root.i: _norm(ent.text) for ent, _ in spans}
    for ent, _ in spans:
        name = _norm(ent.text)
        if name in decided:
            continue
        root = ent.root
        partners = [t for t in root.children if t.dep_ == "conj"]
        if root.dep_ == "conj":
            partners.append(root.head)
        for partner in partners:
            known = decided.get(by_root.get(partner.i, ""))
            if known is not None:
                decided[name] = known
                break


def _missed(doc: Any, spans: list[tuple[Any, str]]) -> list[tuple[Any, str]]:
    """Other occurrences of the names found, which the model passed over."""
    taken = [(ent.start_char, ent.end_char) for ent, _ in spans]
    labels: dict[str, str] = {}
    for ent, label in spans:
        labels.setdefault(ent.text, label)
    found: list[tuple[Any, str]] = []
    for text, label in sorted(labels.items(), key=lambda item: -len(item[0])):
        pattern = re.compile(rf"(?<![\w@./]){re.escape(text)}(?![\w@])")
        for m in pattern.finditer(doc.text):
            if any(s < m.end() and m.start() < e for s, e in taken):
                continue
            span = doc.char_span(m.start(), m.end())
            if span is not None:
                taken.append(m.span())
                found.append((span, label))
    return found


def _refined(ent: Any, label: str, people: set[str]) -> str:
    if label != "PERSON" and 2 <= len(ent) <= 3 and ent[-1].text in people:
        return "PERSON"
    if label == "GPE" and ent.text in COUNTRIES:
        return "GPE_COUNTRY"
    if label == "ORG" and any(t.lower_ in _SCHOOL_WORDS for t in ent):
        return "ORG_EDUCATION"
    return label


def _one_line(ent: Any) -> Any:
    """The part of a span on its root's line: the model runs a heading into the next line."""
    breaks = [t.i for t in ent if "\n" in t.text]
    if not breaks:
        return ent
    start, end = ent.start, ent.end
    for i in breaks:
        if i < ent.root.i:
            start = i + 1
        elif i >= ent.root.i:
            end = min(end, i)
    return ent.doc[start:end] if end > start else ent


def _repeated(
    doc: Any,
    chunk: Chunk,
    mentions: list[_Mention],
    full_names: list[tuple[list[str], str, str]],
    person: str | None,
) -> list[_Mention]:
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
    found: list[_Mention] = []
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
                _Mention(Entity(class_iri, surface, start, end, name=alias), span.root, True)
            )
    return found


def _relate(
    a: _Mention, b: _Mention, ontology: Ontology, cues: list[PropertyCues]
) -> list[Relation]:
    path = path_between(a.root, b.root)
    if path is None:
        return []
    stems = stems_of(path)
    # "X was founded by Y": the agent comes second in the text, first in the relation.
    first, second = (b, a) if any(t.dep_ == "agent" for t in path) else (a, b)
    best: list[tuple[PropertyCues, _Mention, _Mention, str]] = []
    best_strength = 0
    fits = ontology.fits
    for c in cues:
        if c.prop.kind == "datatype":
            continue
        s, o = first, second
        if not (_fits(fits, s, c.prop.domain) and _fits(fits, o, c.prop.range)):
            s, o = second, first
            if not (_fits(fits, s, c.prop.domain) and _fits(fits, o, c.prop.range)):
                continue
        matched = c.cues & stems
        if len(path) > 2:
            matched -= _PREPOSITIONS  # "in" far from both mentions says nothing about them
        if not matched or (c.open and len(path) > 2):
            continue  # no cue; or an open property whose cue is not right between the two
        strength = len(matched)
        if strength > best_strength:
            best, best_strength = [], strength
        if strength == best_strength:
            best.append((c, s, o, min(matched)))
    start = min(a.entity.start or 0, b.entity.start or 0)
    end = max(a.entity.end or 0, b.entity.end or 0)
    return [
        Relation(c.prop.iri, s.entity.key, o.entity.key, start, end, cue=cue)
        for c, s, o, cue in best
    ]


def _fits(fits: Any, mention: _Mention, allowed: frozenset[str]) -> bool:
    return not allowed or bool(fits(mention.entity.class_iri, allowed))


def _describing_class(
    ent: Any, label: str, described: dict[int, tuple[str, ...]], mapping: Mapping
) -> str | None:
    """The class of a class word that says what the named span is, if one does.

    "X is a city" and "X, a city" say it whatever the model's type; "the city of X" and
    "the river X" only choose among the classes the type maps to ("the council of Brenna"
    does not make Brenna a council).
    """
    root = ent.root
    # "Lake Geneva", "Kettle Square Station": a class word at either end of the name.
    strong: list[Any] = [t for t in (ent[0], ent[-1]) if t.i != root.i or len(ent) == 1]
    strong = [t for t in strong if len(ent) > 1]
    strong += [t for t in root.children if t.dep_ == "appos"]
    if root.dep_ == "appos":
        strong.append(root.head)
    if root.dep_ == "compound" and root.head.i >= ent.end:
        strong.append(root.head)  # "the OpenTide project"
    if root.dep_ == "attr" and root.head.lemma_ == "be":
        strong.extend(t for t in root.head.children if t.dep_ == "nsubj")  # "the book is X"
    if root.dep_ in ("nsubj", "nsubjpass") and root.head.lemma_ == "be":
        strong.extend(t for t in root.head.children if t.dep_ == "attr")
    named = {iri for iris in mapping.candidates.values() for iri in iris}
    places = {iri for t in _PLACE_TYPES for iri in mapping.candidates.get(t, ())}
    # "mayor Ilse Marten", "the river Ise": a kind of named thing before the name.
    weak = [(t, named) for t in root.lefts if t.i < ent.start and t.pos_ == "NOUN"]
    head = root.head.head
    if root.dep_ == "pobj" and root.head.lower_ == "of" and not _ranked(head):
        weak.append((head, places))  # "the city of Lyon", not "the council of X"
    for token, allowed in [(t, None) for t in strong] + weak:
        for class_iri in described.get(token.i, ()):
            if allowed is None or class_iri in allowed:
                return str(class_iri)
    return None


def _ranked(noun: Any) -> bool:
    """ "the highest mountain of the Alps": one of many, not the name's own kind."""
    return any(t.tag_ in ("JJS", "RBS") or t.dep_ in ("nummod",) for t in noun.children)


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())
