"""An OWL/RDFS ontology read with rdflib: classes, properties and a canonical form.

Rules:
- Classes are the IRIs typed ``owl:Class`` or ``rdfs:Class``; anonymous class expressions
  (restrictions, unions) are not classes. ``rdfs:subClassOf`` links between IRIs form the
  hierarchy, including links to IRIs the ontology does not declare.
- Labels come from ``rdfs:label``, ``skos:prefLabel`` and ``skos:altLabel``. A label is
  kept when it has no language tag or an English one (``en``, ``en-GB``…, any case);
  labels in other languages are dropped. Whitespace inside a label is collapsed.
- Properties are the IRIs typed ``owl:ObjectProperty``, ``owl:DatatypeProperty`` or
  ``rdf:Property``. Domain and range are sets of IRIs (an ``owl:unionOf`` is expanded);
  a class fits them when it is, or is a subclass of, any member (``owl:Thing`` and
  ``rdfs:Resource`` fit everything).
- ``canonical`` is the graph as sorted N-Triples (blank nodes relabelled with
  ``rdflib.compare.to_canonical_graph`` first), so one ontology gives the same bytes and
  ``content_hash`` in Turtle, RDF/XML or JSON-LD.
"""

from __future__ import annotations

import hashlib
import json
import re
import types
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from xml.sax import SAXParseException

from rdflib import BNode, Graph, URIRef
from rdflib import Literal as RdfLiteral
from rdflib.compare import to_canonical_graph
from rdflib.namespace import OWL, RDF, RDFS, SKOS
from rdflib.plugins.parsers.jsonld import to_rdf
from rdflib.plugins.parsers.notation3 import BadSyntax

from genkeep.errors import OntologyInvalid

PropertyKind = Literal["object", "datatype", "property"]

# A fixed base makes relative IRIs resolve the same way in every process (rdflib would
# otherwise resolve them against the current directory).
BASE_IRI = "urn:genkeep:ontology:"

_FORMAT_ALIASES = {
    "turtle": "turtle",
    "ttl": "turtle",
    "text/turtle": "turtle",
    "nt": "turtle",  # N-Triples is a subset of Turtle
    "xml": "xml",
    "rdf/xml": "xml",
    "rdfxml": "xml",
    "rdf": "xml",
    "owl": "xml",
    "application/rdf+xml": "xml",
    "json-ld": "json-ld",
    "jsonld": "json-ld",
    "json": "json-ld",
    "application/ld+json": "json-ld",
}
_SUFFIX_FORMATS = {
    ".ttl": "turtle",
    ".turtle": "turtle",
    ".nt": "turtle",
    ".rdf": "xml",
    ".owl": "xml",
    ".xml": "xml",
    ".jsonld": "json-ld",
    ".json": "json-ld",
}
# An XML root element with attributes (namespace declarations); a Turtle IRI has no space.
_XML_START = re.compile(rb"<(?:[?!]|[A-Za-z_][\w.:-]*\s)")
_LABEL_PREDICATES = (RDFS.label, SKOS.prefLabel, SKOS.altLabel)
_COMMENT_PREDICATES = (RDFS.comment, SKOS.definition)
_PROPERTY_KINDS: tuple[tuple[URIRef, PropertyKind], ...] = (
    (OWL.ObjectProperty, "object"),
    (OWL.DatatypeProperty, "datatype"),
    (RDF.Property, "property"),
)
_UNIVERSAL = frozenset({str(OWL.Thing), str(RDFS.Resource)})


@dataclass(frozen=True, slots=True)
class OntologyClass:
    iri: str
    labels: tuple[str, ...]
    superclasses: frozenset[str]  # direct rdfs:subClassOf IRIs
    comments: tuple[str, ...] = ()  # rdfs:comment and skos:definition, English or untagged


@dataclass(frozen=True, slots=True)
class OntologyProperty:
    iri: str
    kind: PropertyKind
    labels: tuple[str, ...]
    domain: frozenset[str]
    range: frozenset[str]


@dataclass(frozen=True, slots=True, eq=False)
class Ontology:
    """A parsed ontology; two are the same ontology when their ``canonical`` bytes are equal."""

    name: str
    classes: Mapping[str, OntologyClass]
    properties: Mapping[str, OntologyProperty]
    canonical: bytes = field(repr=False)
    content_hash: str
    # Direct rdfs:subClassOf links between IRIs, declared classes or not.
    hierarchy: Mapping[str, frozenset[str]] = field(repr=False)
    _ancestors: dict[str, frozenset[str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ancestors", {})

    def ancestors(self, class_iri: str) -> frozenset[str]:
        """The class itself and all its superclasses, transitively (cycles are fine)."""
        cached = self._ancestors.get(class_iri)
        if cached is None:
            seen = {class_iri}
            stack = [class_iri]
            while stack:
                for parent in self.hierarchy.get(stack.pop(), ()):
                    if parent not in seen:
                        seen.add(parent)
                        stack.append(parent)
            cached = self._ancestors[class_iri] = frozenset(seen)
        return cached

    def is_subclass_of(self, class_iri: str, other: str) -> bool:
        return other in _UNIVERSAL or other in self.ancestors(class_iri)

    def fits(self, class_iri: str, allowed: Iterable[str]) -> bool:
        """Whether the class satisfies a domain or range (any member, subclasses included)."""
        return any(self.is_subclass_of(class_iri, target) for target in allowed)


def parser_message(exc: Exception, data: bytes) -> str:
    """The parser's complaint with its line, as text: rdflib's Turtle error quotes raw bytes."""
    line: int | None = None
    if isinstance(exc, BadSyntax):
        line, why = exc.lines + 1, str(exc._why)
    elif isinstance(exc, SAXParseException):
        line, why = exc.getLineNumber(), exc.getMessage()
    elif isinstance(exc, json.JSONDecodeError):
        line, why = exc.lineno, exc.msg
    else:
        why = str(exc) or type(exc).__name__
    why = " ".join(why.split())[:200]
    if line is None:
        return why
    lines = data.decode("utf-8", errors="replace").splitlines()
    text = " ".join(lines[line - 1].split())[:120] if 0 < line <= len(lines) else ""
    return f"line {line}: {why}" + (f": {text}" if text else "")


def load_ontology(data: bytes, *, fmt: str | None = None, name: str = "") -> Ontology:
    """Parse Turtle, RDF/XML or JSON-LD; ``fmt`` is guessed from ``name``, then content."""
    label = f"ontology {name!r}" if name else "ontology"
    if not data.strip():
        raise OntologyInvalid(f"{label} is empty")
    rdf_format = _resolve_format(data, fmt, name)
    graph = Graph()
    try:
        if rdf_format == "json-ld":
            _parse_json_ld(data, graph)
        else:
            graph.parse(data=data, format=rdf_format, publicID=BASE_IRI)
    except OntologyInvalid:
        raise
    except Exception as exc:  # rdflib raises a different type per parser
        raise OntologyInvalid(
            f"cannot parse {label} as {rdf_format}: {parser_message(exc, data)}"
        ) from exc
    classes = _classes(graph)
    if not classes:
        raise OntologyInvalid(f"{label} declares no classes (owl:Class or rdfs:Class)")
    canonical = canonical_bytes(graph)
    return Ontology(
        name=name,
        classes=types.MappingProxyType(classes),
        properties=types.MappingProxyType(_properties(graph)),
        canonical=canonical,
        content_hash=hashlib.sha256(canonical).hexdigest(),
        hierarchy=types.MappingProxyType(_hierarchy(graph)),
    )


def canonical_bytes(graph: Graph) -> bytes:
    """Sorted N-Triples; blank nodes get content-derived ids so equal graphs give equal bytes."""
    if any(isinstance(term, BNode) for triple in graph for term in triple):
        graph = to_canonical_graph(graph)
    lines = {line for line in graph.serialize(format="nt", encoding="utf-8").splitlines() if line}
    return b"".join(line + b"\n" for line in sorted(lines))


def _resolve_format(data: bytes, fmt: str | None, name: str) -> str:
    if fmt is not None:
        resolved = _FORMAT_ALIASES.get(fmt.strip().lower())
        if resolved is None:
            known = ", ".join(sorted(set(_FORMAT_ALIASES.values())))
            raise OntologyInvalid(f"unknown ontology format {fmt!r} (known: {known})")
        return resolved
    lowered = name.lower()
    for suffix, resolved in _SUFFIX_FORMATS.items():
        if lowered.endswith(suffix):
            return resolved
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:512]
    if head[:1] in (b"{", b"["):
        return "json-ld"
    if _XML_START.match(head):
        return "xml"
    return "turtle"


def _parse_json_ld(data: bytes, graph: Graph) -> None:
    document = json.loads(data)
    remote = next(_remote_contexts(document), None)
    if remote is not None:
        raise OntologyInvalid(f"remote JSON-LD contexts are not fetched ({remote!r}); inline it")
    # rdflib's Graph.parse for JSON-LD goes through the deprecated ConjunctiveGraph (a
    # DeprecationWarning on every call); its converter fills a plain Graph directly.
    to_rdf(document, graph, base=BASE_IRI)


def _remote_contexts(node: Any) -> Iterator[str]:
    if isinstance(node, list):
        for item in node:
            yield from _remote_contexts(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in ("@context", "@import"):
                for context in value if isinstance(value, list) else [value]:
                    if isinstance(context, str):
                        yield context
            yield from _remote_contexts(value)


def _classes(graph: Graph) -> dict[str, OntologyClass]:
    iris: set[URIRef] = set()
    for class_type in (OWL.Class, RDFS.Class):
        iris.update(s for s in graph.subjects(RDF.type, class_type) if isinstance(s, URIRef))
    return {
        str(iri): OntologyClass(
            iri=str(iri),
            labels=_labels(graph, iri),
            superclasses=frozenset(
                str(parent)
                for parent in graph.objects(iri, RDFS.subClassOf)
                if isinstance(parent, URIRef) and parent != iri
            ),
            comments=_labels(graph, iri, _COMMENT_PREDICATES),
        )
        for iri in sorted(iris)
    }


def _hierarchy(graph: Graph) -> dict[str, frozenset[str]]:
    parents: dict[str, set[str]] = {}
    for child, parent in graph.subject_objects(RDFS.subClassOf):
        if isinstance(child, URIRef) and isinstance(parent, URIRef) and child != parent:
            parents.setdefault(str(child), set()).add(str(parent))
    return {child: frozenset(found) for child, found in parents.items()}


def _properties(graph: Graph) -> dict[str, OntologyProperty]:
    kinds: dict[URIRef, PropertyKind] = {}
    # Reverse order so the most specific kind (object, datatype) wins over rdf:Property.
    for rdf_type, kind in reversed(_PROPERTY_KINDS):
        for subject in graph.subjects(RDF.type, rdf_type):
            if isinstance(subject, URIRef):
                kinds[subject] = kind
    return {
        str(iri): OntologyProperty(
            iri=str(iri),
            kind=kinds[iri],
            labels=_labels(graph, iri),
            domain=_class_set(graph, graph.objects(iri, RDFS.domain)),
            range=_class_set(graph, graph.objects(iri, RDFS.range)),
        )
        for iri in sorted(kinds)
    }


def _labels(
    graph: Graph, subject: URIRef, predicates: tuple[URIRef, ...] = _LABEL_PREDICATES
) -> tuple[str, ...]:
    found: set[str] = set()
    for predicate in predicates:
        for value in graph.objects(subject, predicate):
            if isinstance(value, RdfLiteral) and _is_english_or_untagged(value.language):
                text = " ".join(str(value).split())
                if text:
                    found.add(text)
    return tuple(sorted(found))


def _is_english_or_untagged(language: str | None) -> bool:
    if not language:
        return True
    language = language.lower()
    return language == "en" or language.startswith("en-")


def _class_set(graph: Graph, nodes: Iterable[Any]) -> frozenset[str]:
    iris: set[str] = set()
    for node in nodes:
        if isinstance(node, URIRef):
            iris.add(str(node))
        elif isinstance(node, BNode):
            for union in graph.objects(node, OWL.unionOf):
                iris.update(str(m) for m in _rdf_list(graph, union) if isinstance(m, URIRef))
    return frozenset(iris)


def _rdf_list(graph: Graph, head: Any) -> Iterator[Any]:
    seen: set[Any] = set()
    while head != RDF.nil and head not in seen:  # a malformed, cyclic list ends too
        seen.add(head)
        yield from graph.objects(head, RDF.first)
        head = graph.value(head, RDF.rest, default=RDF.nil)
