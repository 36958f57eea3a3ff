"""Relations between the mentions of a chunk, read sentence by sentence from the parse.

Two named mentions of one sentence, or a named mention and a word that refers back to one
("it", "its", "he", "her"; "the river", "the city"), are related by a property when its
domain and range fit (either way round) and a cue word lies on the dependency path between
them (``relations``). A referring word stands for the nearest named mention before it, within
the two sentences before, that fits what the property needs (for a pronoun, the subject of
a sentence; for a class word, a name of that class): "Its mayor, Christina Kitsos"
after "...in Geneva" is Geneva's (a mayor's domain is a settlement); "it ends in the sea"
after "the Rhône ... Switzerland and France" is the Rhône's (a river's mouth). A cue that is
a word of the property's own labels counts twice a synonym's, so "a mountain in the Uri
Alps" says ``mountainRange`` rather than ``isPartOf``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from genkeep.extract.model import Entity, Relation
from genkeep.extract.ner.relations import PropertyCues, path_between, stems_of
from genkeep.extract.ner.spans import tokens_at
from genkeep.extract.ontology import Ontology

_PAIR_WINDOW = 12
_PREPOSITIONS = frozenset({"in", "at", "of", "on", "into", "through", "within", "about", "by"})
_IT = frozenset({"it", "its"})
_PRONOUNS = re.compile(r"\b(?:it|its|he|him|his|she|her)\b", re.IGNORECASE)
_PERSONAL = frozenset({"he", "him", "his", "she", "her"})
_DEFINITE = frozenset({"the", "this", "that"})
_SENTENCES_BACK = 2


@dataclass(slots=True)
class Mention:
    entity: Entity
    root: Any  # spaCy Token: the span's syntactic head
    named: bool


@dataclass(slots=True)
class _Referring:
    token: Any
    antecedents: list[Mention]  # nearest first


def relations(
    doc: Any, mentions: list[Mention], ontology: Ontology, cues: list[PropertyCues],
    person: str | None,
) -> list[Relation]:  # fmt: skip
    """The chunk's relations (module docstring), each once, in mention order."""
    named = [m for m in mentions if m.named]
    blocked_all = frozenset(m.root.i for m in named)
    found: list[Relation] = []
    seen: set[tuple[str, str, str]] = set()

    def add(batch: list[Relation]) -> None:
        for relation in batch:
            triple = (relation.subject_key, relation.property_iri, relation.object_key)
            mirror = (relation.object_key, relation.property_iri, relation.subject_key)
            if triple not in seen and mirror not in seen:
                seen.add(triple)
                found.append(relation)

    by_sentence: dict[int, list[Mention]] = {}
    for mention in named:
        by_sentence.setdefault(mention.root.sent.start, []).append(mention)
    for members in by_sentence.values():
        for i, a in enumerate(members):
            for b in members[i + 1 : i + 1 + _PAIR_WINDOW]:
                if a.entity.key == b.entity.key or b.root.i == a.root.i:
                    continue
                blocked = blocked_all - {a.root.i, b.root.i}
                add(relate(a, b, ontology, cues, blocked))
    for referring in _referring(doc, mentions, ontology, person):
        sentence = referring.token.sent.start
        for b in by_sentence.get(sentence, ()):
            if b.root.i == referring.token.i:
                continue
            blocked = blocked_all - {b.root.i}
            for antecedent in referring.antecedents:
                if antecedent.entity.key == b.entity.key:
                    break  # it stands for b, the nearer: not for one further back
                standing = Mention(antecedent.entity, referring.token, True)
                # "its mayor": the possessed noun must be the cue
                noun = referring.token.head if referring.token.dep_ == "poss" else None
                batch = relate(standing, b, ontology, cues, blocked, noun)
                if batch:
                    add(batch)
                    break
    return found


def _referring(
    doc: Any, mentions: list[Mention], ontology: Ontology, person: str | None
) -> list[_Referring]:
    """Pronouns and definite class words, each with the named mentions it may stand for."""
    named = sorted((m for m in mentions if m.named), key=lambda m: m.root.i)
    starts = [s.start for s in doc.sents]

    def is_person(cls: str) -> bool:
        return person is not None and ontology.is_subclass_of(cls, person)

    def before(token: Any, wanted: Any, subjects: bool = False) -> list[Mention]:
        k = max(0, _index_le(starts, token.sent.start) - _SENTENCES_BACK)
        earliest = starts[k]
        out: list[Mention] = []
        keys: set[str] = set()
        for m in reversed(named):
            if m.root.i >= token.i or m.root.i < earliest or m.entity.key in keys:
                continue
            if subjects and not _subject(m.root):
                continue  # a pronoun names what a sentence is about, not any name in it
            keys.add(m.entity.key)
            if wanted(m.entity.class_iri):
                out.append(m)
        return out

    found: list[_Referring] = []
    for token in tokens_at(doc, _PRONOUNS):
        word = token.lower_
        if word in _IT:
            antecedents = before(token, lambda c: not is_person(c), subjects=True)
        elif word in _PERSONAL:
            # "he", "she": people are few, so any person before when no subject was one.
            antecedents = before(token, is_person, subjects=True) or before(token, is_person)
        else:
            continue
        if antecedents:
            found.append(_Referring(token, antecedents))
    for m in mentions:
        if m.named or not any(t.dep_ == "det" and t.lower_ in _DEFINITE for t in m.root.children):
            continue
        cls = m.entity.class_iri
        antecedents = before(m.root, lambda c, cls=cls: ontology.is_subclass_of(c, cls))
        if antecedents:
            found.append(_Referring(m.root, antecedents))
    found.sort(key=lambda r: r.token.i)
    return found


def _subject(token: Any) -> bool:
    while token.dep_ in ("conj", "appos") and token.head.i != token.i:
        token = token.head
    return token.dep_ in ("nsubj", "nsubjpass")


def _index_le(starts: list[int], value: int) -> int:
    """The index of ``value`` in the sorted ``starts`` (a sentence's start is one of them)."""
    low, high = 0, len(starts)
    while low < high:
        middle = (low + high) // 2
        if starts[middle] <= value:
            low = middle + 1
        else:
            high = middle
    return max(0, low - 1)


def relate(
    a: Mention, b: Mention, ontology: Ontology, cues: list[PropertyCues],
    blocked: frozenset[int] = frozenset(), cue_word: Any = None,
) -> list[Relation]:  # fmt: skip
    """The properties a cue on the path between ``a`` and ``b`` gives them (the strongest);
    with ``cue_word``, only a cue that word is."""
    path = path_between(a.root, b.root, blocked)
    if path is None:
        return []
    stems = stems_of([cue_word] if cue_word is not None else path)
    # "X was founded by Y": the agent comes second in the text, first in the relation.
    first, second = (b, a) if any(t.dep_ == "agent" for t in path) else (a, b)
    best: list[tuple[PropertyCues, Mention, Mention, str]] = []
    best_strength = 0
    fits = ontology.fits
    for c in cues:
        if c.prop.kind == "datatype":
            continue
        ranges = c.implied or c.prop.range
        s, o = first, second
        if not (_fits(fits, s, c.prop.domain) and _fits(fits, o, ranges)):
            s, o = second, first
            if not (_fits(fits, s, c.prop.domain) and _fits(fits, o, ranges)):
                continue
        matched = c.cues & stems
        if len(path) > 2:
            matched -= _PREPOSITIONS  # "in" far from both mentions says nothing about them
        own = matched & c.own
        if not matched or (c.open and len(path) > 2 and not own):
            continue  # no cue; or an open property whose cue is neither its own word nor close
        strength = 2 * len(own) + len(matched - own)
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


def _fits(fits: Any, mention: Mention, allowed: frozenset[str]) -> bool:
    return not allowed or bool(fits(mention.entity.class_iri, allowed))
