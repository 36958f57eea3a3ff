"""Entity types of the model mapped to the ontology's classes.

Rules, for every entity type with cue words (``TYPE_CUES``, in order of preference):
- a class scores 4 when a label's last word or its IRI's local name (camelCase split) is a
  cue, 2 when a label holds a cue elsewhere, 1 when only its comment does; half of its best
  superclass's score when that is higher ("Student" under "Person" maps PERSON too);
- each cue further down the list counts 2 % less; the best class wins, ties going to the
  more general class (fewer superclasses), then the IRI;
- a score under 1 maps nothing: that type's mentions are dropped;
- a type's candidates, the classes a class word in context may choose among ("the river X"),
  are those a cue names (score 3+) and their subclasses.
A mapping file (JSON ``{"PERSON": "<class IRI or local name>", "PRODUCT": null}``) overrides
or extends the result; null drops the type. ``Mapping.record`` is what a run stores.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping as MappingType
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genkeep.errors import BadInput, ConfigurationError
from genkeep.extract.ontology import Ontology, OntologyClass

TYPE_CUES: dict[str, tuple[str, ...]] = {
    "PERSON": ("person", "people", "human", "individual", "agent"),
    "ORG": (
        "organization", "organisation", "company", "corporation", "business", "agency",
        "institution", "firm", "group", "team", "university", "council", "authority",
        "operator", "party", "agent",
    ),
    "GPE": (
        "city", "town", "country", "state", "municipality", "nation", "region", "province",
        "place", "location", "settlement", "area", "spatial thing",
    ),
    "LOC": (
        "place", "location", "region", "area", "river", "mountain", "lake", "sea",
        "continent", "landmark", "feature", "spatial thing",
    ),
    "FAC": ("building", "facility", "station", "bridge", "airport", "structure", "venue",
            "landmark", "place", "location"),
    "PRODUCT": ("product", "software", "device", "vehicle", "tool", "artifact"),
    "EVENT": ("event", "festival", "conference", "meeting", "war", "competition"),
    "WORK_OF_ART": ("creative work", "work", "book", "document", "film", "song", "article",
                    "publication", "painting"),
    "LAW": ("law", "legislation", "regulation", "act", "policy"),
    "LANGUAGE": ("language",),
    # Refinements the extractor makes (a country's name, a school's): mapped only to a class
    # a cue names, else they fall back to their base type.
    "GPE_COUNTRY": ("country", "nation", "sovereign state"),
    "ORG_EDUCATION": ("educational organization", "university", "school", "college"),
}  # fmt: skip
_BASE = {"GPE_COUNTRY": "GPE", "ORG_EDUCATION": "ORG"}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|[_\-\s]+")
_WORDS = re.compile(r"[a-z]+")


def local_name(iri: str) -> str:
    """The IRI's last segment, camelCase split into lower-case words."""
    tail = re.split(r"[#/:]", iri.rstrip("/#"))[-1]
    return " ".join(part.lower() for part in _CAMEL.split(tail) if part)


def class_score(cls: OntologyClass, cue: str) -> float:
    names = [" ".join(label.lower().split()) for label in cls.labels] + [local_name(cls.iri)]
    if any(name == cue or name.endswith(" " + cue) for name in names):
        return 4.0
    pattern = re.compile(rf"\b{re.escape(cue)}s?\b")
    if any(pattern.search(name) for name in names):
        return 2.0
    if any(pattern.search(comment.lower()) for comment in cls.comments):
        return 1.0
    return 0.0


@dataclass(frozen=True, slots=True)
class Mapping:
    """Entity type -> class IRI (None: dropped); candidates, best first, for context."""

    types: MappingType[str, str | None]
    candidates: MappingType[str, tuple[str, ...]]

    def record(self) -> dict[str, Any]:
        return {
            "types": dict(sorted(self.types.items())),
            "candidates": {k: list(v) for k, v in sorted(self.candidates.items())},
        }

    @classmethod
    def from_record(cls, record: MappingType[str, Any]) -> Mapping:
        return cls(
            types=dict(record["types"]),
            candidates={k: tuple(v) for k, v in record["candidates"].items()},
        )

    def class_for(self, label: str) -> str | None:
        """The type's class; a refined type absent from the mapping is its base type's."""
        if label in self.types:
            return self.types[label]
        return self.types.get(_BASE.get(label, ""))


def automatic(ontology: Ontology) -> Mapping:
    """The mapping from the ontology's labels, comments and hierarchy (module docstring)."""
    types: dict[str, str | None] = {}
    candidates: dict[str, tuple[str, ...]] = {}
    direct: dict[tuple[str, str], float] = {}
    for entity_type, cues in TYPE_CUES.items():
        for cls in ontology.classes.values():
            best = 0.0
            for rank, cue in enumerate(cues):
                best = max(best, class_score(cls, cue) * (1 - 0.02 * rank))
            direct[(entity_type, cls.iri)] = best
    for entity_type in TYPE_CUES:
        scored: list[tuple[float, int, str]] = []
        named: list[tuple[float, int, str]] = []
        for cls in ontology.classes.values():
            score = direct[(entity_type, cls.iri)]
            ancestors = ontology.ancestors(cls.iri) - {cls.iri}
            inherited = max((direct.get((entity_type, a), 0.0) for a in ancestors), default=0.0)
            if score >= 1.0 or inherited >= 3.0:
                scored.append((-max(score, inherited / 2), len(ancestors), cls.iri))
            if score >= 3.0 or inherited >= 3.0:
                # Named by a cue, or under a class that is: a kind of what the type names.
                named.append((-max(score, inherited / 2), len(ancestors), cls.iri))
        scored.sort()
        named.sort()
        candidates[entity_type] = tuple(iri for _, _, iri in named)
        if entity_type in _BASE:
            if named:  # a refinement maps only to a class its cue names
                types[entity_type] = named[0][2]
            continue
        types[entity_type] = scored[0][2] if scored else None
    return Mapping(types, candidates)


def read_overrides(path: Path) -> dict[str, str | None]:
    """A mapping file's entries; ConfigurationError naming the file if it is not one."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the ner mapping file {path}: {exc}") from None
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in raw.items()
    ):
        raise ConfigurationError(
            f"the ner mapping file {path} must be a JSON object of entity type -> class or null"
        )
    return {str(k).upper(): v for k, v in raw.items()}


def with_overrides(
    mapping: Mapping, overrides: MappingType[str, str | None], ontology: Ontology
) -> Mapping:
    """``mapping`` with the file's entries; a class is an IRI or a class's local name."""
    types = dict(mapping.types)
    candidates = dict(mapping.candidates)
    for entity_type, target in overrides.items():
        iri = None if target is None else _find_class(target, ontology)
        types[entity_type] = iri
        candidates[entity_type] = () if iri is None else (iri,)
    return Mapping(types, candidates)


def _find_class(target: str, ontology: Ontology) -> str:
    if target in ontology.classes:
        return target
    found = [iri for iri in ontology.classes if re.split(r"[#/:]", iri)[-1] == target]
    if len(found) == 1:
        return found[0]
    raise BadInput(f"the ner mapping names {target!r}, which is not one class of the ontology")
