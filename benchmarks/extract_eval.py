"""The builtin and ner extractors scored on every evaluation set (``genkeep eval`` per set).

Sets: benchmarks/eval/{foaf,schema,geo} (public ontologies the extractors never saw, a
~500-word text each with hand-written gold, see build_gold.py), rhine (geo's ontology, a text
written after the rules and scored once: held out) and the shipped sample
(its class-word gold, and its named-entity gold). Prints one table and writes
benchmarks/results/extract_eval.json. Goals on the unseen sets (ner): entity F1 >= 0.75
for person, organization and place classes; mention F1 >= 0.65; relation F1 >= 0.4.

    .venv/bin/python benchmarks/extract_eval.py
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from genkeep.extract.builtin import BuiltinExtractor  # noqa: E402
from genkeep.extract.evaluate import Report, evaluate_report  # noqa: E402
from genkeep.extract.index import OntologyIndex  # noqa: E402
from genkeep.extract.model import Extractor  # noqa: E402
from genkeep.extract.ner.extractor import NerExtractor  # noqa: E402
from genkeep.extract.ontology import load_ontology  # noqa: E402

EVAL = ROOT / "benchmarks" / "eval"
SAMPLES = ROOT / "src" / "genkeep" / "extract" / "samples"
SETS = {
    "foaf": (EVAL / "foaf" / "gold.jsonl", EVAL / "foaf" / "ontology.ttl"),
    "schema.org": (EVAL / "schema" / "gold.jsonl", EVAL / "schema" / "ontology.ttl"),
    "dbpedia geo": (EVAL / "geo" / "gold.jsonl", EVAL / "geo" / "ontology.ttl"),
    "rhine (held out)": (EVAL / "rhine" / "gold.jsonl", EVAL / "rhine" / "ontology.ttl"),
    "sample": (SAMPLES / "gold.jsonl", SAMPLES / "ontology.ttl"),
    "sample named": (SAMPLES / "gold_named.jsonl", SAMPLES / "ontology.ttl"),
}
# Local names of the person, organization and place classes of each set's ontology.
KINDS = (
    "Person", "Organization", "Organisation", "EducationalOrganization", "Place", "City",
    "Country", "Region", "SpatialThing", "District",
)  # fmt: skip


def kinds_f1(report: Report) -> float:
    """Entity-level micro F1 over the person, organization and place classes only."""
    tp = fp = fn = 0
    for iri, scores in report.entities_by_class.items():
        if iri.rsplit("/", 1)[-1].rsplit("#", 1)[-1] in KINDS:
            tp, fp, fn = tp + scores.tp, fp + scores.fp, fn + scores.fn
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


async def main() -> None:
    extractors: dict[str, Extractor] = {"builtin": BuiltinExtractor(), "ner": NerExtractor()}
    table = Table(title="builtin vs ner: F1 (precision / recall)")
    for column in ("set", "extractor", "mentions", "entities", "person/org/place entities",
                   "relations"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("set", "extractor") else "right")
    document: dict[str, Any] = {}
    for name, (gold, ontology) in SETS.items():
        index = OntologyIndex(load_ontology(ontology.read_bytes(), name=ontology.name))
        for label, extractor in extractors.items():
            report = await evaluate_report(gold, extractor, index)
            kinds = kinds_f1(report)
            table.add_row(
                name, label,
                *(f"{s.f1:.3f} ({s.precision:.2f}/{s.recall:.2f})"
                  for s in (report.mentions, report.entities)),
                f"{kinds:.3f}",
                f"{report.relations.f1:.3f} ({report.relations.precision:.2f}/"
                f"{report.relations.recall:.2f})",
            )  # fmt: skip
            document[f"{name}/{label}"] = {**report.as_json(), "person_org_place_f1": kinds}
        table.add_section()
    Console(width=160).print(table)
    path = ROOT / "benchmarks" / "results" / "extract_eval.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
