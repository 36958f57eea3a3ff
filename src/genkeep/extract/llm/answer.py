"""What the LLM is asked for: the ontology's vocabulary, the prompt, and the answer's schema.

The wire schema (strict structured outputs) and the pydantic model say the same thing: the
model is how an answer is accepted or refused, whatever the server enforced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from genkeep.extract.model import OntologyIndexLike

SCHEMA_NAME = "genkeep_extraction"
# Change it whenever the prompt's wording changes: it is part of every cache key.
PROMPT_TEMPLATE_VERSION = "extract-prompt-1"

_SYSTEM_TEMPLATE = """\
You extract entities and relations from a text to build a knowledge graph, using only \
the ontology below.

Classes (IRI: labels):
{classes}

Properties (IRI):
{properties}

Rules:
- "surface" is the entity's words copied exactly as they appear in the text.
- Use only the class and property IRIs listed above.
- A relation links two entities of your "entities" list, named by surface and class.
- List every entity and relation the text states; answer with empty lists if there are none.
"""


class InvalidAnswer(Exception):
    """An answer that must be asked again; never cached."""


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """What the prompt and schema offer: the index's classes (with labels) and properties."""

    classes: dict[str, tuple[str, ...]]
    properties: tuple[str, ...]

    @classmethod
    def of(cls, index: OntologyIndexLike) -> Vocabulary:
        labels: dict[str, set[str]] = {}
        for label, class_iri in index.labels():
            labels.setdefault(class_iri, set()).add(label)
        # The index lists properties only per class pair: once per index, not per chunk.
        properties = {
            prop
            for subject in labels
            for obj in labels
            for prop in index.properties_between(subject, obj)
        }
        return cls(
            classes={iri: tuple(sorted(labels[iri])) for iri in sorted(labels)},
            properties=tuple(sorted(properties)),
        )

    def schema(self) -> dict[str, Any]:
        """The answer's JSON schema as the request sends it (part of every cache key)."""
        class_enum = {"type": "string", "enum": list(self.classes)}
        prop = {"type": "string", "enum": list(self.properties)} if self.properties else {}
        relation = _object(
            subject={"type": "string"},
            subject_class=class_enum,
            property=prop or {"type": "string"},
            object={"type": "string"},
            object_class=class_enum,
        )
        relations: dict[str, Any] = {"type": "array", "items": relation}
        if not self.properties:
            relations["maxItems"] = 0
        entity = _object(surface={"type": "string"}, **{"class": class_enum})
        return _object(entities={"type": "array", "items": entity}, relations=relations)

    def system_prompt(self) -> str:
        classes = "\n".join(f"- {iri}: {', '.join(labels)}" for iri, labels in self.classes.items())
        properties = "\n".join(f"- {iri}" for iri in self.properties) or "(none)"
        return _SYSTEM_TEMPLATE.format(classes=classes, properties=properties)


def _object(**properties: dict[str, Any]) -> dict[str, Any]:
    """A strict-mode JSON-schema object: every property required, no others allowed."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _vocabulary(info: ValidationInfo) -> Vocabulary:
    vocabulary = info.context.get("vocabulary") if info.context else None
    if not isinstance(vocabulary, Vocabulary):
        # Not a ValueError: pydantic would report a misuse as a bad answer.
        raise TypeError("an answer is read with read_answer, which names the vocabulary")
    return vocabulary


def _known_class(value: str, info: ValidationInfo) -> str:
    if value not in _vocabulary(info).classes:
        raise ValueError(f"not a class of the ontology: {json.dumps(value)[:80]}")
    return value


# Strict: a number is not a string; extra: a key the schema lacks is refused.
_STRICT = ConfigDict(extra="forbid", strict=True)


class AnswerEntity(BaseModel):
    model_config = _STRICT

    surface: str
    class_iri: str = Field(alias="class")

    check_class = field_validator("class_iri")(_known_class)


class AnswerRelation(BaseModel):
    model_config = _STRICT

    subject: str
    subject_class: str
    property: str
    object: str
    object_class: str

    check_classes = field_validator("subject_class", "object_class")(_known_class)

    @field_validator("property")
    @classmethod
    def _known_property(cls, value: str, info: ValidationInfo) -> str:
        if value not in _vocabulary(info).properties:
            raise ValueError(f"not a property of the ontology: {json.dumps(value)[:80]}")
        return value


class Answer(BaseModel):
    """One chunk's answer: the entities it names and the relations between them."""

    model_config = _STRICT

    entities: list[AnswerEntity]
    relations: list[AnswerRelation]


def read_answer(text: str, vocabulary: Vocabulary) -> Answer:
    """The answer in ``text``; InvalidAnswer if it is not JSON or breaks the schema."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidAnswer(f"not JSON ({exc})") from None
    try:
        return Answer.model_validate(data, context={"vocabulary": vocabulary})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = "$" + "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]
        )
        raise InvalidAnswer(f"does not match the schema: {where}: {first['msg']}") from None
