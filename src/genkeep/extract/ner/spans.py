"""The named spans of a parsed chunk: the model's entities, trimmed, joined, retyped.

- trimmed: a leading article, a trailing possessive or punctuation, another line's words;
- joined: "the International Committee" "of the" "Red Cross" is one organization's name;
  "Swiss" "Alps" one name (a capitalized compound before a name is part of it);
- found again: later occurrences of a name the model passed over;
- retyped by the words around them: a name people are not named like ("the Rhône") is no
  person; one that a ", who" follows is one, and so is a longer name ending with it; a
  person or an organization the text puts somewhere ("born in Bregenz", "west of
  Marseille", "families in Tyrol") is a place; a country's name is a country, a
  "University…" a school.
"""

from __future__ import annotations

import re
from typing import Any

from genkeep.extract.ner.countries import COUNTRIES
from genkeep.extract.ner.kinds import KIND_WORDS, ORG_KINDS, PERSON_KINDS
from genkeep.extract.ner.mapping import TYPE_CUES

Spans = list[tuple[Any, str]]  # (spaCy Span, entity type)

_DETERMINERS = frozenset({"the", "a", "an", "this", "that"})
_SCHOOL_WORDS = frozenset({"university", "college", "school", "academy", "polytechnic"})
_WHO = re.compile(r"\b(?:who|whom|whose)\b")
_BORN = re.compile(r"\bborn\b")
# Capitalized kind words that may end a name ("Society"), singular or plural.
_NAME_KINDS = re.compile(
    r"\b(?:"
    + "|".join(sorted(w.capitalize() for w in KIND_WORDS if w not in PERSON_KINDS))
    + r")s?\b"
)
_COMPASS = frozenset({
    "north", "south", "east", "west", "north-east", "north-west", "south-east", "south-west",
    "northeast", "northwest", "southeast", "southwest", "outskirts", "centre", "center",
})  # fmt: skip
# Prepositions that put their object somewhere: people and organizations are not objects of
# these ("through Grenoble", "near Arles"); "in" only under a noun ("families in Tyrol": an
# organization is "invested in").
_PLACING = frozenset({"near", "around", "across", "throughout", "through", "into", "along",
                      "outside", "inside", "towards", "toward", "beyond", "in"})  # fmt: skip
_PLACING_ORG = frozenset({"near", "around", "across", "throughout", "outside", "beyond"})
_TRAILING = frozenset({"POS", "CC", "IN", "DT", "TO"})  # "Salt and": the model's cut
_PROPER = frozenset({"PERSON", "ORG", "GPE", "LOC", "FAC", "NORP"})
_JOINERS = (("of",), ("of", "the"), ("for",), ("for", "the"))


def name_spans(doc: Any, words_at: set[tuple[int, int]]) -> Spans:
    """The chunk's named spans in text order, with their types (module docstring)."""
    spans: Spans = []
    for ent in doc.ents:
        label = ent.label_  # a slice of the span below has none
        if label not in TYPE_CUES:
            continue
        ent = _one_line(ent)
        while len(ent) > 1 and (
            ent[0].is_space or (ent[0].lower_ in _DETERMINERS and label != "WORK_OF_ART")
        ):
            ent = ent[1:]
        while len(ent) > 1 and (ent[-1].tag_ in _TRAILING or ent[-1].is_punct or ent[-1].is_space):
            ent = ent[:-1]
        proper = any(t.text[:1].isupper() or t.like_num for t in ent)
        if label in _PROPER and not any(t.tag_ in ("NNP", "NNPS") for t in ent):
            continue  # "Getting around Varnholm": a heading's verb is nobody's name
        if not proper or ent.text.strip() != ent.text or (ent.start_char, ent.end_char) in words_at:
            continue  # a class word the model took for a name ("the LEZ"): the word wins
        spans.append((_extended(ent), label))
    spans = _joined(spans)
    spans += _unrecognized(doc, spans)
    spans.sort(key=lambda item: item[0].start)
    spans += _missed(doc, spans)
    spans.sort(key=lambda item: item[0].start)
    spans = [(ent, _unarticled(ent, label)) for ent, label in spans]
    people = _people(doc, spans)
    return [(ent, _refined(ent, label, people)) for ent, label in spans]


def _extended(ent: Any) -> Any:
    """ "Swiss" + "Alps": capitalized compounds right before the name, attached into it."""
    start = ent.start
    while start > 0:
        token = ent.doc[start - 1]
        inside = ent.start <= token.head.i < ent.end
        if not (token.dep_ == "compound" and inside and token.text[:1].isupper()):
            break
        if token.ent_type_ and token.ent_type_ not in ("NORP", ent.label_):
            break
        start -= 1
    return ent if start == ent.start else ent.doc[start : ent.end]


def _joined(spans: Spans) -> Spans:
    """An organization's name, "of the" and a name right after it: one organization; a
    person's name and a name right after it, across a line break ("Clara" "Weiss"): one."""
    joined: Spans = []
    for ent, label in spans:
        if joined:
            last, last_label = joined[-1]
            gap = tuple(t.lower_ for t in ent.doc[last.end : ent.start] if not t.is_space)
            if ent.text[:1].isupper() and (
                (last_label == "ORG" and gap in _JOINERS)
                or (last_label == "PERSON" and not gap and ent.start - last.end <= 1)
            ):
                joined[-1] = (ent.doc[last.start : ent.end], last_label)
                continue
        joined.append((ent, label))
    return joined


def _unrecognized(doc: Any, spans: Spans) -> Spans:
    """Names the model missed that say what they are: capitalized words ending with a kind
    word ("the Marine Biological Association", "the Rhône Glacier")."""
    taken = {t.i for ent, _ in spans for t in ent}
    found: Spans = []
    for token in tokens_at(doc, _NAME_KINDS):
        word = token.lower_
        if token.i in taken or token.tag_ not in ("NNP", "NNPS"):
            continue
        start = k = token.i
        while k > 0 and doc[k - 1].i not in taken:
            before = doc[k - 1]
            if before.is_space and before.text == "\n":
                k -= 1  # a line wrapped inside the name
            elif before.tag_ in ("NNP", "NNPS") and before.text[:1].isupper():
                start = k = k - 1
            else:
                break
        if start < token.i and not doc[start].is_sent_start:
            org = word in ORG_KINDS or word[:-1] in ORG_KINDS
            found.append((doc[start : token.i + 1], "ORG" if org else "LOC"))
    return found


def _missed(doc: Any, spans: Spans) -> Spans:
    """Other occurrences of the names found, which the model passed over."""
    taken = [(ent.start_char, ent.end_char) for ent, _ in spans]
    labels: dict[str, str] = {}
    for ent, label in spans:
        labels.setdefault(ent.text, label)
    if not labels:
        return []
    # One pass for every name, the longest first where two start at one place.
    names = sorted(labels, key=lambda text: (-len(text), text))
    pattern = re.compile(rf"(?<![\w@./])(?:{'|'.join(map(re.escape, names))})(?![\w@])")
    found: Spans = []
    for m in pattern.finditer(doc.text):
        if any(s < m.end() and m.start() < e for s, e in taken):
            continue
        span = doc.char_span(m.start(), m.end())
        if span is not None:
            found.append((span, labels[m.group()]))
    return found


def _people(doc: Any, spans: Spans) -> set[str]:
    """One-word names the text treats as people's: the model's, those before ", who", and
    those born."""
    people = {ent.text for ent, label in spans if label == "PERSON" and len(ent) == 1}
    for token in tokens_at(doc, _WHO):
        if token.i >= 2 and doc[token.i - 1].text == ",":
            name = doc[token.i - 2]
            if name.tag_ == "NNP" and name.text[:1].isupper():
                people.add(name.text)
    for token in tokens_at(doc, _BORN):
        # "Marković was born in Ljubljana": whoever is born is a person.
        if token.tag_ == "VBN":
            for child in token.children:
                if child.dep_ == "nsubjpass" and child.tag_ == "NNP" and child.text[:1].isupper():
                    people.add(child.text)
    return people


def _unarticled(ent: Any, label: str) -> str:
    if label == "PERSON" and ent.start > 0 and ent.doc[ent.start - 1].lower_ == "the":
        return "LOC"  # "the Rhône": people do not take an article
    return label


def _refined(ent: Any, label: str, people: set[str]) -> str:
    articled = ent.start > 0 and ent.doc[ent.start - 1].lower_ == "the"
    if label != "PERSON" and 1 <= len(ent) <= 3 and ent[-1].text in people and not articled:
        return "PERSON"  # "Elena Marković" as ORG once, "Marković" as PERSON later
    if label in ("PERSON", "ORG") and _placed(ent.root, label):
        label = "GPE"
    if label == "GPE" and ent.text in COUNTRIES:
        return "GPE_COUNTRY"
    if label == "ORG" and any(t.lower_ in _SCHOOL_WORDS for t in ent):
        return "ORG_EDUCATION"
    return label


def _placed(root: Any, label: str) -> bool:
    """Whether the text puts the name somewhere: the object of a placing preposition."""
    if root.dep_ != "pobj":
        return False
    preposition = root.head
    word = preposition.lower_
    if word == "of":
        return preposition.head.lower_ in _COMPASS  # "west of Marseille"
    if word == "in" and preposition.head.lower_ == "born":
        return True  # "born in Tromsø"
    if label == "ORG" and word not in _PLACING_ORG:
        return word == "in" and str(preposition.head.tag_).startswith("NN")
    return word in _PLACING


def _one_line(ent: Any) -> Any:
    """The part of a span on its root's line: the model runs a heading into the next line."""
    breaks = [t.i for t in ent if "\n" in t.text and _line_break(t)]
    if not breaks:
        return ent
    start, end = ent.start, ent.end
    for i in breaks:
        if i < ent.root.i:
            start = i + 1
        elif i >= ent.root.i:
            end = min(end, i)
    return ent.doc[start:end] if end > start else ent


def _line_break(token: Any) -> bool:
    """A break that ends a block: a blank line, or the end of a heading ("# Along the Rhône")."""
    if token.text.count("\n") >= 2:
        return True
    text: str = token.doc.text
    line_start = text.rfind("\n", 0, token.idx) + 1
    return text[line_start:].lstrip().startswith("#")


def tokens_at(doc: Any, pattern: re.Pattern[str]) -> list[Any]:
    """The tokens where ``pattern`` matches the text: a search, not a walk over every token."""
    found: list[Any] = []
    for m in pattern.finditer(doc.text):
        span = doc.char_span(m.start(), m.end())
        if span is not None and len(span) == 1:
            found.append(span[0])
    return found
