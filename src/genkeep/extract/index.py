"""The index derived from an ontology (labels, compiled matcher, property lookup) and its cache.

Label matching rules (used by ``LabelMatcher`` and ``OntologyIndex.classes_for_label``):
- Labels are NFC-normalized and their whitespace collapsed; a space in a label matches any
  run of whitespace in the text holding at most one line break.
- A label written entirely in capitals (it has cased letters and none is lower case, e.g.
  "US", "IT", "LEZ", "P+R") is an acronym and matches only with exactly that case; every
  other label matches case-insensitively (a letter matches its upper, lower and title case
  forms; no full case folding, so "STRASSE" does not match "Straße").
- A match starts and ends at a word boundary: no letter, digit, underscore or combining
  accent may touch it on either side, so "cat" is not found in "concatenate".
- Where labels overlap, the leftmost match wins, then the longest ("New York City" over
  "New York" and "York").
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from genkeep.extract.ontology import Ontology

logger = logging.getLogger(__name__)

_WORD = r"\w\u0300-\u036f"  # word characters and combining accents
# A label's space: horizontal whitespace and at most one line break, never a blank line.
_SPACE = r"(?:[^\S\n]+\n?|\n)[^\S\n]*"
_END = f"(?![{_WORD}])"
# Labels are matched through nested regex groups; very long ones are not labels anyway.
MAX_LABEL_LENGTH = 200


class LabelMatch(NamedTuple):
    """A label found in a text: ``text[start:end]`` and every class that label names."""

    start: int
    end: int
    classes: tuple[str, ...]


class _Node:
    __slots__ = ("children", "key")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.key: str | None = None


@dataclass(frozen=True, slots=True)
class _Label:
    text: str
    class_iri: str
    acronym: bool


def normalize_label(label: str) -> str:
    return " ".join(unicodedata.normalize("NFC", label).split())


def is_acronym(label: str) -> bool:
    return label == label.upper() and label != label.lower()


def _fold(text: str) -> str:
    # Lower case that keeps the length: "İ" (U+0130) is the one character whose lower
    # case is two characters long, so it stays as it is.
    if "\u0130" not in text:
        return text.lower()
    return "".join(ch if ch == "\u0130" else ch.lower() for ch in text)


def _char_pattern(folded: str) -> str:
    """Regex for one folded label character: its case variants, or a label space."""
    if folded == " ":
        return _SPACE
    variants = {v for v in (folded, folded.upper(), folded.title()) if len(v) == 1}
    variants = {v for v in variants if _fold(v) == folded}
    if len(variants) == 1:
        return re.escape(folded)
    return "[" + "".join(re.escape(v) for v in sorted(variants)) + "]"


class LabelMatcher:
    """Finds labels in text with one compiled regex: a trie of every folded label."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._by_key: dict[str, list[_Label]] = {}
        for raw_label, class_iri in pairs:
            label = normalize_label(raw_label)
            if not re.search(f"[{_WORD}]", label) or len(label) > MAX_LABEL_LENGTH:
                continue
            self._by_key.setdefault(_fold(label), []).append(
                _Label(label, class_iri, is_acronym(label))
            )
        trie = _Node()
        for key in sorted(self._by_key):
            node = trie
            for ch in key:
                node = node.children.setdefault(ch, _Node())
            node.key = key
        self._prefixes: dict[str, list[str]] = {}  # label key -> shorter keys it starts with
        body = self._emit(trie, [])
        self._regex = re.compile(f"(?<![{_WORD}])(?:{body}){_END}") if body else None
        self._key_regexes: dict[str, re.Pattern[str]] = {}
        # Keys without an acronym label need no case check: their classes, ready to use.
        self._plain = {
            key: tuple(sorted({e.class_iri for e in entries}))
            for key, entries in self._by_key.items()
            if not any(e.acronym for e in entries)
        }

    def find(self, text: str) -> list[LabelMatch]:
        """Every label occurrence, leftmost-longest, in text order."""
        found: list[LabelMatch] = []
        if self._regex is None:
            return found
        search, plain = self._regex.search, self._plain
        pos = 0
        while (m := search(text, pos)) is not None:
            surface = m.group()
            # The pattern admits only case variants that fold back to the label's own
            # characters, so the folded surface is exactly the label's key.
            key = _fold(" ".join(surface.split()))
            start, end = m.span()
            classes = plain.get(key) or self._accepted(key, surface)
            if not classes:
                # Only an acronym matched, in the wrong case: try the shorter labels here.
                end, classes = self._shorter_match(text, start, key)
            if classes:
                found.append(LabelMatch(start, end, classes))
                pos = end
            else:
                pos = start + 1
        return found

    def classes_for(self, label: str) -> list[str]:
        """Classes a label names, under the same case rule as ``find``."""
        label = normalize_label(label)
        return list(self._accepted(_fold(label), label))

    def _accepted(self, key: str, surface: str) -> tuple[str, ...]:
        entries = self._by_key.get(key, ())
        if any(entry.acronym for entry in entries):
            surface = normalize_label(surface)
        return tuple(sorted({e.class_iri for e in entries if not e.acronym or e.text == surface}))

    def _shorter_match(self, text: str, start: int, key: str) -> tuple[int, tuple[str, ...]]:
        for prefix in reversed(self._prefixes.get(key, [])):
            pattern = self._key_regexes.get(prefix)
            if pattern is None:
                body = "".join(map(_char_pattern, prefix))
                pattern = self._key_regexes[prefix] = re.compile(body + _END)
            m = pattern.match(text, start)
            if m is not None and (classes := self._accepted(prefix, m.group())):
                return m.end(), classes
        return start, ()

    def _emit(self, node: _Node, path: list[str]) -> str:
        """Regex for a trie node: longer continuations first, so the longest label wins."""
        inner_path = path if node.key is None else [*path, node.key]
        branches = [
            _char_pattern(ch) + self._emit(child, inner_path)
            for ch, child in sorted(node.children.items())
        ]
        if node.key is not None:
            self._prefixes[node.key] = path
            branches.append("")  # the label may end here, after trying longer ones
        if not branches:
            return ""
        return branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"


class OntologyIndex:
    """What extraction needs from an ontology, computed once per ontology (see ``IndexCache``)."""

    def __init__(self, ontology: Ontology) -> None:
        self.ontology = ontology
        self._labels = sorted(
            (label, cls.iri) for cls in ontology.classes.values() for label in cls.labels
        )
        self.matcher = LabelMatcher(self._labels)
        # Only properties that say what they link can relate two mentions.
        self._relational = [
            prop for prop in ontology.properties.values() if prop.domain and prop.range
        ]
        self._between: dict[tuple[str, str], list[str]] = {}

    def classes_for_label(self, label: str) -> list[str]:
        return self.matcher.classes_for(label)

    def labels(self) -> list[tuple[str, str]]:
        """(label, class iri) pairs, every label and synonym of every class."""
        return list(self._labels)

    def properties_between(self, subject_class: str, object_class: str) -> list[str]:
        """Properties whose domain fits the subject class and range fits the object class."""
        pair = (subject_class, object_class)
        found = self._between.get(pair)
        if found is None:
            fits = self.ontology.fits
            found = self._between[pair] = [
                prop.iri
                for prop in self._relational
                if fits(subject_class, prop.domain) and fits(object_class, prop.range)
            ]
        return list(found)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class _Entry:
    canonical: bytes
    index: OntologyIndex


class IndexCache:
    """Derived indexes by content hash (I10); every hit is checked against the stored ontology.

    Entries sharing a hash are kept side by side, so a collision costs a recomputation and
    a warning, never a wrong index. Least recently used hashes are dropped past
    ``max_entries``.
    """

    def __init__(
        self, hash_fn: Callable[[bytes], str] = sha256_hex, *, max_entries: int = 64
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._hash_fn = hash_fn
        self._max_entries = max_entries
        self._buckets: OrderedDict[str, list[_Entry]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.collisions = 0

    def __len__(self) -> int:
        return self._size

    def get(self, ontology: Ontology) -> OntologyIndex:
        key = self._hash_fn(ontology.canonical)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is not None:
                self._buckets.move_to_end(key)
                for entry in bucket:
                    if entry.canonical == ontology.canonical:
                        self.hits += 1
                        return entry.index
                self.collisions += 1
                logger.warning(
                    "index cache collision on hash %s: cached %s, requested %s; recomputing",
                    key,
                    ", ".join(_describe(entry.index.ontology) for entry in bucket),
                    _describe(ontology),
                )
            self.misses += 1
            index = OntologyIndex(ontology)
            self._buckets.setdefault(key, []).append(_Entry(ontology.canonical, index))
            self._size += 1
            self._evict()
            return index

    def _evict(self) -> None:
        while self._size > self._max_entries:
            oldest_key, oldest = next(iter(self._buckets.items()))
            oldest.pop(0)
            self._size -= 1
            if not oldest:
                del self._buckets[oldest_key]


def _describe(ontology: Ontology) -> str:
    return f"{ontology.name or 'unnamed ontology'} (sha256 {ontology.content_hash[:16]})"
