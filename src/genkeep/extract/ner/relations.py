"""Relations read from the dependency parse, each backed by a cue word of the text.

Two mentions of one sentence are related by a property when its domain and range fit their
classes (either way round) and a word on the dependency path between them (or the verb that
governs a coordination: "X and Y know each other") is a cue of the property: a word of its
labels or local name, or a synonym of one (``SYNONYMS``). No relation without a cue; for a
property whose domain or range is open (untyped, ``owl:Thing``) the cue must be right
between the two (a path of at most two words). URLs and e-mail addresses become values of the
property whose words say so (homepage, url, mbox, email) for the nearest named subject.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from genkeep.extract.ner.mapping import local_name
from genkeep.extract.ontology import Ontology, OntologyProperty
from genkeep.extract.stems import stem

# Cue stems a property word stands for; a property's own words are always cues.
SYNONYMS: dict[str, frozenset[str]] = {
    stem(key): frozenset(map(stem, values))
    for key, values in {
        "member": {"member", "work", "join", "belong", "employ", "staff", "affiliat"},
        "work": {"work", "employ", "join", "staff"},
        "employ": {"work", "employ", "hire", "staff"},
        "know": {"know", "friend", "colleague", "meet", "met", "acquaint"},
        "found": {"found", "founder", "establish", "start", "launch", "cofound"},
        "founder": {"found", "founder", "establish", "start", "launch", "cofound"},
        "author": {"author", "writ", "write", "wrote", "pen"},
        "creator": {"creat", "make", "made", "build", "built", "develop", "design"},
        "maker": {"creat", "make", "made", "build", "built", "develop", "design"},
        "locat": {"locat", "base", "headquarter", "situat", "in", "at"},
        "location": {"locat", "base", "headquarter", "situat", "in", "at", "held", "hold"},
        "based": {"base", "locat", "headquarter", "in", "at", "live"},
        "near": {"near", "live", "base", "in"},
        "capital": {"capital"},
        "border": {"border", "neighbour", "neighbor", "adjacent", "adjoin"},
        "country": {"in", "of", "locat"},
        "part": {"part", "in", "within", "belong", "of"},
        "interest": {"interest", "stud", "research"},
        "topic": {"topic", "about", "cover"},
        "fund": {"fund", "sponsor", "financ", "support", "grant"},
        "project": {"lead", "run", "manag", "coordinat", "maintain"},
        "birth": {"born", "bear"},
        "alumni": {"stud", "graduat", "alumn", "attend"},
        "parent": {"part", "division", "subsidiar", "own", "unit"},
        "flow": {"flow", "run", "through", "cross", "pass"},
        "mouth": {"mouth", "empt", "drain", "into", "join"},
        "source": {"rise", "source", "spring"},
        "organiz": {"organis", "organiz", "host", "run"},
        "attend": {"attend", "visit", "join", "speak"},
        "performer": {"perform", "play", "sing", "speak"},
    }.items()
}
_URL_WORDS = frozenset(map(stem, ("homepage", "url", "website", "web", "page", "site", "blog")))
_EMAIL_WORDS = frozenset(map(stem, ("mbox", "email", "mail", "e-mail")))
_STOP = frozenset({"has", "have", "is", "of", "the", "a", "an", "by", "to", "for", "and", "in"})
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)?")
_PATH_LIMIT = 6
_RECIPROCAL_VERBS = frozenset({"meet", "marry", "collaborate", "partner", "cooperate"})


@dataclass(frozen=True, slots=True)
class PropertyCues:
    prop: OntologyProperty
    cues: frozenset[str]
    open: bool  # domain or range untyped or universal


def property_cues(ontology: Ontology) -> list[PropertyCues]:
    """Every property with its cue stems, in IRI order."""
    found: list[PropertyCues] = []
    for prop in ontology.properties.values():
        words: set[str] = set()
        for text in (*prop.labels, local_name(prop.iri)):
            words.update(stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP)
        cues = set(words)
        for word in words:
            cues |= SYNONYMS.get(word, frozenset())
        is_open = not prop.domain or not prop.range or _universal(prop.domain | prop.range)
        found.append(PropertyCues(prop, frozenset(cues), is_open))
    return found


def _universal(targets: Iterable[str]) -> bool:
    return any(t.endswith(("#Thing", "#Resource")) for t in targets)


def value_properties(cues: list[PropertyCues], email: bool) -> list[PropertyCues]:
    """Properties a URL (or an e-mail address) is a value of, by their words."""
    wanted = _EMAIL_WORDS if email else _URL_WORDS
    return [c for c in cues if c.cues & wanted]


def path_between(a: Any, b: Any) -> list[Any] | None:
    """Tokens on the dependency path from ``a`` to ``b`` (both excluded), or None if too long.

    A coordinated mention stands where its first conjunct stands. Two conjuncts of one
    another ("X and Y know each other", "X and Y met") are linked by their verb only when it
    is reciprocal; otherwise not at all ("made by X and Y" does not relate X to Y).
    """
    a, b = _first_conjunct(a), _first_conjunct(b)
    if a.i == b.i:
        verb = _governing_verb(a)
        return verb if verb and _reciprocal(verb[-1]) else None
    up_a = [a, *a.ancestors]
    where = {t.i: k for k, t in enumerate(up_a)}
    up_b = [b, *b.ancestors]
    for k, token in enumerate(up_b):
        if token.i in where:
            path = up_a[1 : where[token.i]] + up_b[1:k]
            if token.i not in (a.i, b.i):
                path.append(token)
            return path if len(path) <= _PATH_LIMIT else None
    return None


def _first_conjunct(token: Any) -> Any:
    while token.dep_ == "conj" and token.head.i != token.i:
        token = token.head
    return token


def _reciprocal(verb: Any) -> bool:
    return verb.lemma_ in _RECIPROCAL_VERBS or any(
        t.lemma_ == "other" or t.lower_ in ("together", "jointly") for t in verb.subtree
    )


def _governing_verb(token: Any) -> list[Any]:
    climbed: list[Any] = []
    for _ in range(3):
        if token.head.i == token.i:
            break
        token = token.head
        climbed.append(token)
        if token.pos_ in ("VERB", "AUX"):
            return climbed
    return []


def stems_of(tokens: Iterable[Any]) -> set[str]:
    found: set[str] = set()
    for token in tokens:
        found.add(stem(token.lower_))
        found.add(stem(token.lemma_.lower()))
    return found
