"""The class each name of a chunk takes: one class per name within the chunk.

In order: a class word or kind word that says what the name is ("Varnholm is a city", "Acme,
a company", "the OpenTide project", "Lake Geneva", "the Mediterranean Sea", "the village of
Le Bouveret", "a designer, Lukas Huber"); the class its conjunct was given ("the Rhône and the
Saône"); the class of the name it ends with ("the Petit Rhône" is a kind of "Rhône"); and
else the class its entity types map to, voted over its mentions ("Innsbruck" is a city even
where the model said ORG).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from genkeep.extract.ner.kinds import Kinds
from genkeep.extract.ner.mapping import Mapping
from genkeep.extract.ner.spans import Spans

_PLACE_TYPES = ("GPE", "LOC", "FAC")
_INDEFINITE = frozenset({"a", "an"})


@dataclass(frozen=True, slots=True)
class Words:
    """What the words of a chunk say about kinds: class words (the ontology's labels, by the
    token index of their head) and kind words (``kinds``)."""

    labels: dict[int, tuple[str, ...]]
    kinds: Kinds

    def classes_at(self, token: Any, *, in_name: bool = False) -> tuple[str, ...]:
        found = self.labels.get(token.i)
        if found:
            return found
        kind = self.kinds.of(token.lower_, in_name=in_name)
        return (kind,) if kind is not None else ()


def decide(spans: Spans, words: Words, mapping: Mapping) -> dict[str, str]:
    """Normalized name -> its class (module docstring); a name without one is absent."""
    decided: dict[str, str] = {}
    votes: dict[str, Counter[str]] = {}
    for ent, label in spans:
        context = describing_class(ent, words, mapping)
        if context is not None:
            decided.setdefault(norm(ent.text), context)
        voted = mapping.class_for(label)
        if voted is not None:
            votes.setdefault(norm(ent.text), Counter())[voted] += 1
    _conjunct_classes(spans, decided)
    _inherited(spans, decided)
    for voted_name, counter in votes.items():
        decided.setdefault(voted_name, counter.most_common(1)[0][0])
    return decided


def describing_class(ent: Any, words: Words, mapping: Mapping) -> str | None:
    """The class of a word that says what the named span is, if one does.

    "X is a city" and "X, a city" say it whatever the model's type; "the city of X" and
    "the river X" only choose among the classes the type maps to ("the council of Brenna"
    does not make Brenna a council).
    """
    root = ent.root
    strong: list[Any] = []
    if len(ent) > 1:
        # "Lake Geneva": a class word at either end of the name.
        strong += [t for t in (ent[0], ent[-1]) if t.i != root.i and t.i in words.labels]
        if strong:
            return words.labels[strong[0].i][0]
        # "the Mediterranean Sea", "the Fraunhofer Society": a kind word at its end.
        last = words.kinds.of(ent[-1].lower_, in_name=True)
        if last is not None and ent[-1].i not in words.labels:
            return last
    strong += [t for t in root.children if t.dep_ == "appos"]
    if root.dep_ == "appos":
        strong.append(root.head)
    if root.dep_ == "compound" and root.head.i >= ent.end:
        strong.append(root.head)  # "the OpenTide project"
    if root.dep_ == "attr" and root.head.lower_ in _BE:
        strong.extend(t for t in root.head.children if t.dep_ == "nsubj")  # "the book is X"
    if root.dep_ in ("nsubj", "nsubjpass") and root.head.lower_ in _BE:
        strong.extend(t for t in root.head.children if t.dep_ == "attr")
    strong += _surface_apposition(ent)
    named = {iri for iris in mapping.candidates.values() for iri in iris}
    places = {iri for t in _PLACE_TYPES for iri in mapping.candidates.get(t, ())}
    # "mayor Ilse Marten", "the river Ise": a kind of named thing before the name.
    weak = [(t, named) for t in root.lefts if t.i < ent.start and t.tag_.startswith("NN")]
    head = root.head.head
    if root.dep_ == "pobj" and root.head.lower_ == "of" and not _ranked(head):
        weak.append((head, places))  # "the city of Lyon", not "the council of X"
    for token, allowed in [(t, None) for t in strong] + weak:
        for class_iri in words.classes_at(token):
            if allowed is None or class_iri in allowed:
                return str(class_iri)
    return None


_BE = frozenset({"is", "are", "was", "were", "be", "been", "being", "'s", "remains"})


def _surface_apposition(ent: Any) -> list[Any]:
    """ "the Cévennes, a mountain range": the noun after ", a", where the parse missed it."""
    doc = ent.doc
    if ent.end + 2 >= len(doc) or doc[ent.end].text != ",":
        return []
    if doc[ent.end + 1].lower_ not in _INDEFINITE:
        return []
    noun: Any = None
    for token in doc[ent.end + 2 : ent.end + 6]:
        if token.tag_.startswith("NN"):
            noun = token
        elif noun is not None or token.tag_ not in ("JJ", "JJR", "JJS", "VBN", "HYPH"):
            break
    return [noun] if noun is not None else []


def _ranked(noun: Any) -> bool:
    """ "the highest mountain of the Alps", "the rivers of Europe": one of many, not the
    name's own kind."""
    return noun.tag_ in ("NNS", "NNPS") or any(
        t.tag_ in ("JJS", "RBS") or t.dep_ in ("nummod",) for t in noun.children
    )


def _conjunct_classes(spans: Spans, decided: dict[str, str]) -> None:
    """ "the Rhône and the Saône" are of one kind: a name without a class word takes the class
    a class word gave its conjunct."""
    by_root = {ent.root.i: norm(ent.text) for ent, _ in spans}
    for ent, _ in spans:
        name = norm(ent.text)
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


def _inherited(spans: Spans, decided: dict[str, str]) -> None:
    """ "the Petit Rhône" after "the Rhône, a river": a longer name ending with a name whose
    class is known is of that class (not a person's: "Anna Berg" is no kind of "Berg")."""
    for ent, label in spans:
        name = norm(ent.text)
        if name in decided or label == "PERSON" or len(ent) < 2:
            continue
        for k in range(1, len(ent)):
            if ent.root.i < ent[k].i:
                break  # "the University of Bergen" is a university, not a kind of Bergen
            known = decided.get(norm(ent[k:].text))
            if known is not None:
                decided[name] = known
                break


def norm(text: str) -> str:
    return " ".join(text.casefold().split())
