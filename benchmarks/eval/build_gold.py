"""Builds each evaluation set's gold.jsonl from its hand-written spec.json and text.md.

The spec names every entity with the surfaces the text uses for it, every nominal mention
(a class word that refers to one thing: "the project"), and the relations the text states.
Every word-bounded occurrence of a surface is a mention (names case-sensitive, class words
not), longest first; ``skip`` lists occurrences (0-based, in text order) that refer to
nothing ("met in person"). A spec may name its text and gold file elsewhere (``sample/``:
the shipped sample's text, whose named-entity gold lives beside it), and a ``scope`` of
"named" (names only). Run: ``python benchmarks/eval/build_gold.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent


def build(folder: Path) -> dict[str, object]:
    spec = json.loads((folder / "spec.json").read_text(encoding="utf-8"))
    text = (folder / spec.get("text", "text.md")).read_text(encoding="utf-8")
    prefix = spec["namespace"]

    def iri(name: str) -> str:
        return name if "://" in name else prefix + name

    wanted: list[tuple[str, str, str, bool, set[int]]] = []  # surface, class, name, case, skip
    for class_name, entities in spec["named"].items():
        for name, surfaces in entities.items():
            for surface in surfaces:
                wanted.append((surface, iri(class_name), name, True, set()))
    for class_name, surface, skip in spec.get("nominal", []):
        wanted.append((surface, iri(class_name), surface, False, set(skip)))
    wanted.sort(key=lambda w: -len(w[0]))
    taken: list[tuple[int, int]] = []
    found: list[dict[str, object]] = []
    for surface, class_iri, name, case, skip in wanted:
        flags = 0 if case else re.IGNORECASE
        # A surface may wrap at a line break: any run of whitespace between its words.
        words = r"\s+".join(map(re.escape, surface.split()))
        pattern = re.compile(rf"(?<![\w@./]){words}(?![\w@]|\.\w)", flags)
        for number, m in enumerate(pattern.finditer(text)):
            if number in skip or any(s < m.end() and m.start() < e for s, e in taken):
                continue
            taken.append(m.span())
            found.append(
                {"start": m.start(), "end": m.end(), "class": class_iri, "surface": m.group(),
                 "entity": name}
            )  # fmt: skip
    entities = sorted(found, key=lambda e: (int(str(e["start"])), int(str(e["end"]))))
    relations = [
        {"subject": s, "property": p if "://" in p else spec["properties"] + p, "object": o}
        for s, p, o in spec["relations"]
    ]
    document: dict[str, object] = {"text": text, "entities": entities, "relations": relations}
    if spec.get("scope"):
        document["scope"] = spec["scope"]
    return document


def main() -> None:
    for spec in sorted(HERE.glob("*/spec.json")):
        document = build(spec.parent)
        line = json.dumps(document, ensure_ascii=False)
        target = json.loads(spec.read_text(encoding="utf-8")).get("gold", "gold.jsonl")
        (spec.parent / target).resolve().write_text(line + "\n", encoding="utf-8")
        mentions, relations = document["entities"], document["relations"]
        assert isinstance(mentions, list) and isinstance(relations, list)
        print(f"{spec.parent.name}: {len(mentions)} mentions, {len(relations)} relations")


if __name__ == "__main__":
    main()
