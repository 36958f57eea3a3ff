"""Checking a merged graph against its ontology: known classes and properties, domains, ranges.

Domains and ranges are checked by pySHACL with shapes derived from the ontology (the
ontology is mixed into the data graph, so ``sh:class`` honours ``rdfs:subClassOf``);
unknown classes and properties are found by a plain scan, which SHACL cannot express.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.collection import Collection
from rdflib.namespace import OWL, RDF, RDFS, SH, XSD
from rdflib.term import Node

from genkeep.errors import BadInput

SHAPES = Namespace("urn:genkeep:shape:")
_CLASS_TYPES = (OWL.Class, RDFS.Class)
_PROPERTY_TYPES = (
    OWL.ObjectProperty,
    OWL.DatatypeProperty,
    OWL.AnnotationProperty,
    RDF.Property,
)
# Predicates any extracted graph may use besides the ontology's own properties.
_BUILTIN_PREDICATES = frozenset({RDF.type, RDFS.label})
_UNIVERSAL = frozenset({OWL.Thing, RDFS.Resource})


@dataclass(frozen=True, slots=True)
class ValidationReport:
    conforms: bool
    problems: list[str]


def validate_graph(
    graph_ttl: bytes, ontology: bytes | Graph, *, max_problems: int = 200
) -> ValidationReport:
    """Parse ``graph_ttl`` and check it against ``ontology`` (Turtle bytes or a graph)."""
    ontology_graph = _ontology_graph(ontology)
    data = Graph()
    try:
        data.parse(data=graph_ttl, format="turtle")
    except Exception as exc:  # rdflib raises many unrelated types for bad syntax
        return ValidationReport(False, [f"graph does not parse as Turtle: {_one_line(exc)}"])

    classes = _classes(ontology_graph)
    properties = _properties(ontology_graph)
    problems = set[str]()
    for subject, klass in data.subject_objects(RDF.type):
        if klass not in classes:
            problems.add(f"{_show(subject)} has class {_show(klass)}, not in the ontology")
    for predicate in set(data.predicates()):
        if predicate not in properties and predicate not in _BUILTIN_PREDICATES:
            problems.add(f"property {_show(predicate)} is not in the ontology")

    shapes, meaning = build_shapes(ontology_graph)
    if meaning:
        # Imported here: pyshacl costs a worker a tenth of a second of CPU at start-up.
        from pyshacl import validate as shacl_validate

        conforms, results, _ = shacl_validate(
            data, shacl_graph=shapes, ont_graph=ontology_graph, inference="none"
        )
        if not conforms:
            problems.update(_describe(results, meaning))

    ordered = sorted(problems)
    if len(ordered) > max_problems:
        ordered = [*ordered[:max_problems], f"… and {len(ordered) - max_problems} more"]
    return ValidationReport(not ordered, ordered)


def open_properties(ontology: Graph) -> set[str]:
    """Properties whose domain or range is open (untyped, ``owl:Thing``, ``rdfs:Resource``):
    the ontology cannot tell a nonsense use of them from a sound one."""
    found: set[str] = set()
    for prop in _properties(ontology):
        for predicate in (RDFS.domain, RDFS.range):
            targets = _class_set(ontology, ontology.objects(prop, predicate))
            if not targets or targets & _UNIVERSAL:
                found.add(str(prop))
    return found


def uncued_problems(
    uncued: dict[str, tuple[int, list[tuple[str, str]]]], open_props: set[str]
) -> list[str]:
    """One problem per open property used by relations that no word of the text supports."""
    problems: list[str] = []
    for prop in sorted(uncued):
        if prop not in open_props:
            continue
        count, examples = uncued[prop]
        shown = "; ".join(f"{_name(s)} → {_name(o)}" for s, o in examples)
        problems.append(
            f"{count} relation(s) {_show(URIRef(prop))} have no cue in the text and the "
            f"property's domain or range is open (e.g. {shown})"
        )
    return problems


def _name(key: str) -> str:
    return repr(key.partition("|")[2] or key)[:60]


def build_shapes(ontology: Graph) -> tuple[Graph, dict[Node, str]]:
    """SHACL shapes for every domain and range, inherited through ``rdfs:subPropertyOf``.

    As in ``genkeep.extract.ontology``, a property's domain (or range) is the set of its
    ``rdfs:domain`` IRIs and ``owl:unionOf`` members, met by an instance of any of them;
    a set holding ``owl:Thing`` or ``rdfs:Resource`` is met by everything and not checked.
    Returns the shapes and, per shape, the message its violations are reported with.
    """
    shapes = Graph()
    meaning: dict[Node, str] = {}
    for number, (prop, kind, targets) in enumerate(_constraints(ontology)):
        node = SHAPES[f"{number}"]
        shapes.add((node, RDF.type, SH.NodeShape))
        shapes.add((node, SH.targetSubjectsOf, prop))
        wanted = " or ".join(_show(target) for target in targets)
        if kind == "domain":
            _require(shapes, node, targets)
            meaning[node] = f"{{focus}} uses {_show(prop)} but is not a {wanted} (domain)"
            continue
        path = SHAPES[f"{number}/range"]
        shapes.add((node, SH.property, path))
        shapes.add((path, SH.path, prop))
        _require(shapes, path, targets)
        meaning[path] = f"{{focus}} {_show(prop)} {{value}}: the value is not a {wanted} (range)"
    return shapes, meaning


def _require(shapes: Graph, shape: URIRef, targets: tuple[URIRef, ...]) -> None:
    """Constrain ``shape``'s value nodes to instances (or literals) of any of ``targets``."""
    if len(targets) == 1:
        _constrain(shapes, shape, targets[0])
        return
    branches: list[Node] = []
    for number, target in enumerate(targets):
        branch = URIRef(f"{shape}/or/{number}")
        _constrain(shapes, branch, target)
        branches.append(branch)
    head = BNode()
    Collection(shapes, head, branches)
    shapes.add((shape, SH["or"], head))


def _constrain(shapes: Graph, shape: URIRef, target: URIRef) -> None:
    if target == RDFS.Literal:
        shapes.add((shape, SH.nodeKind, SH.Literal))
    elif str(target).startswith(str(XSD)) or target == RDF.langString:
        shapes.add((shape, SH.datatype, target))
    else:
        shapes.add((shape, SH["class"], target))


def _constraints(ontology: Graph) -> list[tuple[URIRef, str, tuple[URIRef, ...]]]:
    found: set[tuple[URIRef, str, tuple[URIRef, ...]]] = set()
    for prop in _properties(ontology):
        for ancestor in {prop, *ontology.transitive_objects(prop, RDFS.subPropertyOf)}:
            for kind, predicate in (("domain", RDFS.domain), ("range", RDFS.range)):
                targets = _class_set(ontology, ontology.objects(ancestor, predicate))
                if targets and not targets & _UNIVERSAL:
                    found.add((prop, kind, tuple(sorted(targets))))
    return sorted(found)


def _class_set(ontology: Graph, nodes: Iterable[Node]) -> set[URIRef]:
    iris: set[URIRef] = set()
    for node in nodes:
        if isinstance(node, URIRef):
            iris.add(node)
        elif isinstance(node, BNode):
            for union in ontology.objects(node, OWL.unionOf):
                iris.update(m for m in _list_items(ontology, union) if isinstance(m, URIRef))
    return iris


def _list_items(graph: Graph, head: Node) -> list[Node]:
    items: list[Node] = []
    seen: set[Node] = set()
    while head != RDF.nil and head not in seen:  # a cyclic, malformed list ends too
        seen.add(head)
        items.extend(graph.objects(head, RDF.first))
        rest = graph.value(head, RDF.rest)
        head = RDF.nil if rest is None else rest
    return items


def _classes(ontology: Graph) -> set[Node]:
    classes: set[Node] = set()
    for class_type in _CLASS_TYPES:
        classes.update(ontology.subjects(RDF.type, class_type))
    for sub, sup in ontology.subject_objects(RDFS.subClassOf):
        classes.update((sub, sup))
    for predicate in (RDFS.domain, RDFS.range):
        classes.update(ontology.objects(None, predicate))
    return {node for node in classes if isinstance(node, URIRef)}


def _properties(ontology: Graph) -> set[URIRef]:
    found: set[Node] = set()
    for property_type in _PROPERTY_TYPES:
        found.update(ontology.subjects(RDF.type, property_type))
    for predicate in (RDFS.domain, RDFS.range, RDFS.subPropertyOf):
        found.update(ontology.subjects(predicate, None))
    found.update(ontology.objects(None, RDFS.subPropertyOf))
    return {node for node in found if isinstance(node, URIRef)}


def _describe(results: Graph, meaning: dict[Node, str]) -> set[str]:
    problems: set[str] = set()
    for result in results.subjects(RDF.type, SH.ValidationResult):
        source = results.value(result, SH.sourceShape)
        template = meaning.get(source) if source is not None else None
        focus = results.value(result, SH.focusNode)
        value = results.value(result, SH.value)
        if template is None:
            message = results.value(result, SH.resultMessage)
            problems.add(f"{_show(focus)}: {message}")
        else:
            problems.add(template.format(focus=_show(focus), value=_show(value)))
    return problems


def _ontology_graph(ontology: bytes | Graph) -> Graph:
    if isinstance(ontology, Graph):
        return ontology
    graph = Graph()
    try:
        graph.parse(data=ontology, format="turtle")
    except Exception as exc:
        raise BadInput(f"ontology does not parse as Turtle: {_one_line(exc)}") from None
    return graph


def _show(node: Node | None) -> str:
    if node is None:
        return "(none)"
    if isinstance(node, URIRef):
        return f"<{node}>"
    if isinstance(node, BNode):
        return "[]"
    if isinstance(node, Literal):
        return repr(str(node))[:80]
    return str(node)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]
