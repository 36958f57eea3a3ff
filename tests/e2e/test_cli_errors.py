"""Every CLI error is one line on stderr and an exit code != 0; nothing is written.

Each bad invocation is refused before a run is stored or an output file is made.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_extract_cli import query
from tests.support.server import run_cli

pytestmark = pytest.mark.e2e

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "genkeep" / "extract" / "samples"
TEXT, ONTOLOGY = str(SAMPLES / "text.md"), str(SAMPLES / "ontology.ttl")
EXTRACT = ["extract", TEXT, "--ontology", ONTOLOGY]

BAD_TURTLE = b"""@prefix ex: <http://example.org/> .
ex:A a <http://www.w3.org/2002/07/owl#Class> .
ex:B a ex:Thing ;; oops
"""

# Refused before the database is opened: run once, and the data folder is never made.
BEFORE_THE_DATABASE = {
    "output folder missing": (
        [*EXTRACT, "-o", "/nonexistent-dir/y.ttl"],
        "cannot write /nonexistent-dir/y.ttl: there is no folder /nonexistent-dir",
    ),
    "output is a folder": ([*EXTRACT, "-o", "{tmp}/folder"], "it is a folder"),
    "output format unknown": ([*EXTRACT, "-o", "{tmp}/out.txt"], "cannot tell the format"),
    "output format contradicts": (
        [*EXTRACT, "-o", "{tmp}/out.ttl", "--format", "jsonld"],
        "out.ttl is turtle by its extension, but --format says jsonld",
    ),
    "output twice": (
        [*EXTRACT, "-o", "{tmp}/out.ttl", "-o", "{tmp}/out.ttl"],
        "given twice",
    ),
    "input is a folder": (
        ["extract", "{tmp}/folder", "--ontology", ONTOLOGY],
        "{tmp}/folder is a folder; give a file",
    ),
    "input missing": (
        ["extract", "{tmp}/nope.md", "--ontology", ONTOLOGY],
        "cannot read {tmp}/nope.md: no such file or directory",
    ),
    "input not UTF-8": (
        ["extract", "{tmp}/latin1.md", "--ontology", ONTOLOGY],
        "is not UTF-8 text",
    ),
    "overlap default over chunk size": (
        [*EXTRACT, "--chunk-size", "100", "-o", "{tmp}/out.ttl"],
        "overlap 200 (the default, GENKEEP_EXTRACT_OVERLAP) must be smaller than chunk size 100",
    ),
    "extractor unknown": (
        [*EXTRACT, "--extractor", "gpt"],
        "'gpt' is not one of 'builtin', 'ner', 'llm'",
    ),
    "option unknown": ([*EXTRACT, "--chunk", "5"], "No such option: --chunk"),
    "export without -o": (["runs", "export", "some-run"], "name at least one output"),
}

# Refused once the database is open: on both backends, and no run is stored.
WITH_THE_DATABASE = {
    "ontology malformed": (
        ["extract", TEXT, "--ontology", "{tmp}/bad.ttl", "-o", "{tmp}/out.ttl"],
        "cannot parse ontology 'bad.ttl' as turtle: line 3: ",
    ),
    "llm extractor not configured": (
        [*EXTRACT, "--extractor", "llm", "-o", "{tmp}/out.ttl"],
        "set GENKEEP_EXTRACT_LLM_MODEL",
    ),
    "run unknown": (
        ["runs", "resume", "00000000-0000-0000-0000-000000000000", "-o", "{tmp}/out.ttl"],
        "run 00000000-0000-0000-0000-000000000000 not found",
    ),
}


def refused(case: tuple[list[str], str], tmp_path: Path, env: dict[str, str]) -> None:
    """Run a bad invocation: one error line naming ``expected``, and no file written."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "latin1.md").write_bytes("Café à Paris".encode("latin-1"))
    (tmp_path / "bad.ttl").write_bytes(BAD_TURTLE)
    args, expected = case
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_cli([a.replace("{tmp}", str(tmp_path)) for a in args], env)
    line = one_line(result)
    assert expected.replace("{tmp}", str(tmp_path)) in line, line
    assert "b'" not in line
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "var") == before


@pytest.mark.parametrize("case", list(BEFORE_THE_DATABASE))
def test_refused_before_the_database_is_opened(case: str, tmp_path: Path) -> None:
    env = {"GENKEEP_DATA_DIR": str(tmp_path / "var")}  # the embedded default database
    refused(BEFORE_THE_DATABASE[case], tmp_path, env)
    assert not (tmp_path / "var").exists()


@pytest.mark.parametrize("case", list(WITH_THE_DATABASE))
def test_refused_with_the_database_open(case: str, db_url: str, tmp_path: Path) -> None:
    env = {"GENKEEP_DATABASE_URL": db_url, "GENKEEP_DATA_DIR": str(tmp_path / "var")}
    refused(WITH_THE_DATABASE[case], tmp_path, env)
    assert query(db_url, "SELECT count(*) FROM runs") == [(0,)]


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_unexpected_error_is_one_line_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    # Nothing listens on port 1: the database is unreachable.
    env = {
        "GENKEEP_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/genkeep",
        "GENKEEP_DATA_DIR": str(tmp_path / "var"),
    }
    line = one_line(run_cli(["runs", "list"], env))
    assert "genkeep --debug" in line, line
    debug = run_cli(["--debug", "runs", "list"], env)
    assert debug.returncode != 0 and "Traceback" in debug.stderr
    logged = run_cli(["runs", "list"], {**env, "GENKEEP_LOG_LEVEL": "debug"})
    assert logged.returncode != 0 and "Traceback" in logged.stderr


def test_invalid_settings_are_one_line(tmp_path: Path) -> None:
    env = {"GENKEEP_EXTRACT_CHUNK_SIZE": "many", "GENKEEP_DATA_DIR": str(tmp_path / "var")}
    assert "invalid settings" in one_line(run_cli(["runs", "list"], env))


def test_help_lists_choices_and_defaults() -> None:
    shown = run_cli(["extract", "--help"], {"COLUMNS": "200"}).stdout
    assert "Usage: genkeep extract [OPTIONS] INPUT" in shown
    assert "{input_file}" not in shown and "<bool>" not in shown
    assert "<builtin|ner|llm>" in shown
    assert "[default: (ner when installed, else builtin)]" in shown
    assert "<turtle|jsonld|jsonl>" in shown
    for default in (
        "[default: 4000, or GENKEEP_EXTRACT_CHUNK_SIZE]",
        "[default: 200, or GENKEEP_EXTRACT_OVERLAP]",
        "[default: 8, or GENKEEP_EXTRACT_BATCH_SIZE]",
    ):
        assert default in shown, shown
    top = run_cli(["--help"], {"COLUMNS": "200", "GENKEEP_DATA_DIR": "/x"}).stdout
    assert "genkeep info" in top and "GENKEEP_DATA_DIR" in top


# Every file a command reads, named by the command that reads it.
READERS = {
    "extract input": ["extract", "{file}", "--ontology", ONTOLOGY],
    "extract ontology": ["extract", TEXT, "--ontology", "{file}"],
    "resume input": ["runs", "resume", "some-run", "--input", "{file}"],
    "resume ontology": ["runs", "resume", "some-run", "--ontology", "{file}"],
    "eval gold": ["eval", "--gold", "{file}"],
    "eval ontology": ["eval", "--ontology", "{file}"],
}


def without_read_override() -> list[str]:
    """A prefix that runs a command without root's right to read any file (none if not root)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "as root, the test needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE"
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}"]


@pytest.mark.parametrize("reader", list(READERS))
def test_unreadable_files_are_refused_as_missing_ones_are(reader: str, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    unreadable = tmp_path / "secret.txt"
    unreadable.write_text("Ada Lovelace wrote the first program.")
    unreadable.chmod(0)
    env = {"GENKEEP_DATA_DIR": str(tmp_path / "var")}
    answers = {}
    for name in ("missing.txt", "secret.txt"):
        path = str(tmp_path / name)
        args = [a.replace("{file}", path) for a in READERS[reader]]
        result = run_cli(args, env, cwd=elsewhere, prefix=without_read_override())
        answers[name] = (result.returncode, one_line(result))
    (missing_code, missing), (unreadable_code, refused) = answers.values()
    assert missing == f"error: cannot read {tmp_path / 'missing.txt'}: no such file or directory"
    assert refused == f"error: cannot read {unreadable}: permission denied"
    assert unreadable_code == missing_code == 1
    assert not (tmp_path / "var").exists()  # refused before the database is opened
