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

from genkeep.extract.ner.mapping import class_score, local_name
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
        "mouth": {"mouth", "empt", "drain", "into", "join", "meet", "end"},
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
_RECIPROCAL_VERBS = ("meet", "met", "marr", "collaborat", "partner", "cooperat")  # prefixes


@dataclass(frozen=True, slots=True)
class PropertyCues:
    prop: OntologyProperty
    cues: frozenset[str]
    open: bool  # domain or range untyped or universal
    own: frozenset[str] = frozenset()  # the words of its labels and local name
    # An open range that its name narrows: "current project" links to a Project.
    implied: frozenset[str] = frozenset()


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
        implied: frozenset[str] = frozenset()
        if not prop.range or _universal(prop.range):
            implied = _named_classes(ontology, prop)
        found.append(PropertyCues(prop, frozenset(cues), is_open, frozenset(words), implied))
    return found


def _named_classes(ontology: Ontology, prop: OntologyProperty) -> frozenset[str]:
    """Classes the property's name ends with ("current project": Project; "based near": none)."""
    names = {" ".join(label.lower().split()) for label in prop.labels} | {local_name(prop.iri)}
    return frozenset(
        cls.iri
        for cls in ontology.classes.values()
        if any(class_score(cls, name.split()[-1]) >= 4.0 for name in names if name)
    )


def _universal(targets: Iterable[str]) -> bool:
    return any(t.endswith(("#Thing", "#Resource")) for t in targets)


def value_properties(cues: list[PropertyCues], email: bool) -> list[PropertyCues]:
    """Properties a URL (or an e-mail address) is a value of, by their words."""
    wanted = _EMAIL_WORDS if email else _URL_WORDS
    return [c for c in cues if c.cues & wanted]


def path_between(a: Any, b: Any, blocked: frozenset[int] = frozenset()) -> list[Any] | None:
    """Tokens on the dependency path from ``a`` to ``b`` (both excluded), or None.

    A coordinated or apposed mention stands where its first conjunct stands ("made by X and
    Y", "X and her brother Y"). Two conjuncts of one another ("X and Y know each other") are
    linked by their verb only when it is reciprocal; a mention hanging off another's conjunct
    ("X and Y, which has its seat in Z") is not linked to it. No path: longer than
    ``_PATH_LIMIT`` words, through another named mention (``blocked``, the roots of the
    others), or across two clauses each with its own subject ("belongs to France, and it
    ends in the sea").
    """
    first_a, first_b = _first_conjunct(a), _first_conjunct(b)
    if first_a.i == first_b.i:
        verb = _governing_verb(first_a)
        return verb if verb and _reciprocal(verb[-1]) else None
    up_a = [a, *a.ancestors]
    where = {t.i: k for k, t in enumerate(up_a)}
    up_b = [b, *b.ancestors]
    for k, token in enumerate(up_b):
        if token.i not in where:
            continue
        below_a, below_b = up_a[: where[token.i]], up_b[:k]
        if token.i in (a.i, b.i):
            below = below_b if token.i == a.i else below_a
            if below and below[-1].dep_ == "conj":
                return None  # it hangs off the endpoint's conjunct, not the endpoint
        words = below_a[1:] + below_b[1:]
        if token.i not in (a.i, b.i):
            words.append(token)
        chains = _chain(a) | _chain(b)  # "X and Y": Y's path passes X, which is no stop
        if len(words) > _PATH_LIMIT or any(t.i in blocked - chains for t in words):
            return None
        if any(_new_clause(t) for t in [*below_a, *below_b]):
            return None
        return words
    return None


_COORDINATED = frozenset({"conj", "appos"})


def _chain(token: Any) -> set[int]:
    """The tokens a mention climbs through to its first conjunct (``_first_conjunct``)."""
    found: set[int] = set()
    while token.dep_ in _COORDINATED and token.head.i != token.i:
        token = token.head
        found.add(token.i)
    return found


def _new_clause(token: Any) -> bool:
    """A verb coordinated with another that has a subject of its own: another clause."""
    return (
        token.dep_ == "conj"
        and token.tag_.startswith("VB")
        and any(t.dep_ in ("nsubj", "nsubjpass") for t in token.children)
    )


def _first_conjunct(token: Any) -> Any:
    while token.dep_ in _COORDINATED and token.head.i != token.i:
        token = token.head
    return token


def _reciprocal(verb: Any) -> bool:
    return verb.lower_.startswith(_RECIPROCAL_VERBS) or any(
        t.lower_ in ("other", "others", "together", "jointly") for t in verb.subtree
    )


def _governing_verb(token: Any) -> list[Any]:
    climbed: list[Any] = []
    for _ in range(3):
        if token.head.i == token.i:
            break
        token = token.head
        climbed.append(token)
        if token.tag_.startswith("VB") or token.tag_ == "MD":
            return climbed
    return []


# The pipeline runs without its lemmatizer (a seventh of its time): the irregular forms a cue
# may take, and plural "-ies", are undone here.
_IRREGULAR = {
    "met": "meet", "knew": "know", "known": "know", "wrote": "write", "written": "write",
    "led": "lead", "ran": "run", "made": "make", "built": "build", "began": "begin",
    "begun": "begin", "born": "bear", "bore": "bear", "gave": "give", "given": "give",
    "took": "take", "taken": "take", "held": "hold", "grew": "grow", "grown": "grow",
    "left": "leave", "sold": "sell", "won": "win", "taught": "teach", "found": "find",
    "rose": "rise", "risen": "rise", "flowed": "flow", "joined": "join", "married": "marry",
}  # fmt: skip


def lemmas(word: str) -> set[str]:
    """Crude lemmas of a lower-case word: its irregular base, "-ies"/"-ied" -> "-y", and
    "rises", "based", "leaving" -> "rise", "base", "leave" (``stem`` cuts the rest)."""
    found = {word}
    if word in _IRREGULAR:
        found.add(_IRREGULAR[word])
    if len(word) > 4:
        if word.endswith(("ies", "ied")):
            found.add(word[:-3] + "y")
        elif word.endswith(("es", "ed")):
            found.add(word[:-1])
        elif word.endswith("ing"):
            found.add(word[:-3] + "e")
    return found


def stems_of(tokens: Iterable[Any]) -> set[str]:
    found: set[str] = set()
    for token in tokens:
        found.update(stem(word) for word in lemmas(token.lower_))
    return found
