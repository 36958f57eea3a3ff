"""`genkeep info` and `genkeep eval` with the ner extractor installed, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.server import run_cli

pytestmark = pytest.mark.e2e

FOAF_SET = Path(__file__).resolve().parents[2] / "benchmarks" / "eval" / "foaf"


def test_info_names_ner_the_default_and_eval_compares_extractors(tmp_path: Path) -> None:
    env = {"GENKEEP_DATA_DIR": str(tmp_path / "var"), "GENKEEP_EXTRACT_DEFAULT": "auto"}
    shown = run_cli(["info"], env)
    assert shown.returncode == 0, shown.stderr
    [row] = [line for line in shown.stdout.splitlines() if line.startswith("extractors")]
    assert "ner (en_core_web_sm)" in row and row.endswith("default ner")

    gold, ontology = str(FOAF_SET / "gold.jsonl"), str(FOAF_SET / "ontology.ttl")
    args = ["eval", "--gold", gold, "--ontology", ontology, "--json"]
    scored = run_cli([*args, "--extractor", "builtin", "--extractor", "ner"], env)
    assert scored.returncode == 0, scored.stderr
    reports = json.loads(scored.stdout)
    ner, builtin = reports["genkeep-ner 2"], reports["genkeep-builtin 1"]
    person = "http://xmlns.com/foaf/0.1/Person"
    assert ner["entities_by_class"][person]["f1"] > 0.9 > builtin["entities_by_class"][person]["f1"]
    assert ner["relations"]["tp"] >= 5 and builtin["relations"]["tp"] == 0
