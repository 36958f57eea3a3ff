"""Common nouns that say what kind of thing a name is, resolved to the ontology's classes.

The label matcher knows only the ontology's own words; a text says "the village of Le
Bouveret", "the canton of Valais", "the Mediterranean Sea", "a designer, Lukas Huber". Each
kind word lists the class words it is a kind of, most specific first; the first one that names
a class of the ontology (a label's last word, or its IRI's local name) is the class the kind
word describes. A word none of whose cues names a class describes nothing. General English,
the same for every ontology and text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from genkeep.extract.ner.mapping import class_score
from genkeep.extract.ontology import Ontology

_SETTLEMENT = ("settlement", "populated place", "town", "city", "place")
_REGION = ("region", "administrative region", "district", "area", "populated place", "place")
_WATER = ("body of water", "water body", "water", "natural place", "place")
_NATURAL = ("natural place", "landform", "natural feature", "place")
_RANGE = ("mountain range", "range", "natural place", "place")
_ORG = ("organization", "organisation", "agent")
_PERSON = ("person", "people", "human")

# kind word -> (its own cue first, then what it is a kind of); person kinds marked below.
KIND_WORDS: dict[str, tuple[str, ...]] = {
    **{w: (w, *_SETTLEMENT) for w in ("village", "hamlet", "town", "township", "commune")},
    # Not "capital": a relational noun ("the capital of Austria" is no city).
    **{w: (w, "city", *_SETTLEMENT) for w in ("metropolis", "municipality")},
    **{w: (w, *_REGION) for w in ("canton", "province", "county", "department", "prefecture",
                                  "territory", "district", "state", "land", "duchy")},
    **{w: (w, "sea", *_WATER) for w in ("sea", "ocean", "gulf", "bay", "lagoon", "strait")},
    **{w: (w, "river", "stream", *_WATER) for w in ("river", "creek", "brook", "tributary",
                                                      "canal")},
    **{w: (w, *_NATURAL) for w in ("glacier", "valley", "canyon", "gorge", "delta", "desert",
                                   "forest", "island", "peninsula", "plateau", "volcano",
                                   "waterfall", "cape", "marsh", "wetland")},
    **{w: (w, "mountain", *_NATURAL) for w in ("peak", "summit", "mount")},
    **{w: _RANGE for w in ("mountains", "massif", "hills", "highlands")},
    **{w: (w, *_ORG) for w in ("society", "foundation", "association", "institute", "agency",
                               "company", "firm", "newspaper", "publisher", "broadcaster",
                               "charity", "bank", "chain", "club", "union", "ministry",
                               "federation", "cooperative", "consortium", "league")},
    # Not "fair" (an adjective too, and a trade fair is as often its organizer).
    **{w: (w, "event") for w in ("festival", "conference", "concert", "exhibition",
                                  "congress", "tournament", "championship")},
    **{w: (w, *_PERSON) for w in ("designer", "editor", "writer", "poet", "novelist",
                                  "journalist", "mayor", "engineer", "scientist", "researcher",
                                  "professor", "student", "artist", "architect", "director",
                                  "founder", "president", "minister", "lawyer", "doctor",
                                  "teacher", "farmer", "painter", "musician", "singer",
                                  "actor", "actress", "photographer", "developer",
                                  "programmer", "maintainer", "hydrologist", "biologist",
                                  "historian", "economist", "chemist", "physicist")},
}  # fmt: skip
PERSON_KINDS = frozenset(w for w, cues in KIND_WORDS.items() if cues[1:] == _PERSON)
ORG_KINDS = frozenset(w for w, cues in KIND_WORDS.items() if cues[1:] == _ORG)


@dataclass(frozen=True, slots=True)
class Kinds:
    """Kind word -> the ontology class it describes; person kinds apart (a surname can be one)."""

    classes: Mapping[str, str]

    def of(self, word: str, *, in_name: bool = False) -> str | None:
        """The class a (lower-case) word describes; inside a name never a person's kind."""
        if in_name and word in PERSON_KINDS:
            return None
        found = self.classes.get(word)
        if found is None and word.endswith("s"):
            found = self.classes.get(word[:-1])
        return found


def resolve(ontology: Ontology) -> Kinds:
    """Each kind word's class in this ontology (module docstring)."""
    named: dict[str, str] = {}
    for cue in sorted({c for cues in KIND_WORDS.values() for c in cues}):
        # A cue names a class when it is a label's last word or the local name; the most
        # general such class (fewest superclasses), then the IRI, for determinism.
        hits = sorted(
            (len(ontology.ancestors(cls.iri)), cls.iri)
            for cls in ontology.classes.values()
            if class_score(cls, cue) >= 4.0
        )
        if hits:
            named[cue] = hits[0][1]
    classes: dict[str, str] = {}
    for word, cues in KIND_WORDS.items():
        for cue in cues:
            if cue in named:
                classes[word] = named[cue]
                break
    return Kinds(classes)
