"""``-o``: the format by extension or ``--format``, every path checked before a run starts."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from genkeep.cli.outputs import STDOUT, OutputFormat, as_options, plan_outputs
from genkeep.errors import BadInput


def test_formats_follow_the_extension(tmp_path: Path) -> None:
    paths = [tmp_path / "g.ttl", tmp_path / "g.jsonld", tmp_path / "s.jsonl"]
    planned = plan_outputs(paths, None)
    assert [o.format for o in planned] == [
        OutputFormat.turtle,
        OutputFormat.jsonld,
        OutputFormat.jsonl,
    ]
    assert not any(p.exists() for p in paths)  # checking writes nothing


def test_format_names_stdout_and_unknown_extensions(tmp_path: Path) -> None:
    [out, other] = plan_outputs([STDOUT, tmp_path / "graph.txt"], OutputFormat.jsonld)
    assert out.format is other.format is OutputFormat.jsonld
    assert out.shown() == "stdout"


@pytest.mark.parametrize(
    ("name", "fmt", "message"),
    [
        ("graph.txt", None, "cannot tell the format of"),
        ("-", None, "cannot tell the format of -"),
        ("graph.ttl", OutputFormat.jsonl, "turtle by its extension, but --format says jsonl"),
        ("missing/graph.ttl", None, "there is no folder"),
        ("folder", None, "it is a folder"),
    ],
)
def test_refused_before_the_run(
    tmp_path: Path, name: str, fmt: OutputFormat | None, message: str
) -> None:
    (tmp_path / "folder").mkdir()
    path = STDOUT if name == "-" else tmp_path / name
    with pytest.raises(BadInput, match=message):
        plan_outputs([path], fmt)


def test_the_same_file_twice_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BadInput, match="given twice"):
        plan_outputs([Path("g.ttl"), tmp_path / "g.ttl"], None)


@pytest.mark.parametrize(
    ("names", "fmt"),
    [
        (["g.ttl"], None),
        (["g.ttl", "s.jsonl", "g.jsonld"], None),
        (["my graph.jsonld", "it's.data"], OutputFormat.jsonld),
        (["-"], OutputFormat.turtle),
        ([], None),
    ],
)
def test_as_options_plans_the_same_outputs_again(
    names: list[str], fmt: OutputFormat | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    planned = plan_outputs([Path(name) for name in names], fmt)
    words = shlex.split(as_options(planned))
    paths = [Path(words[i + 1]) for i, word in enumerate(words) if word == "-o"]
    again = words[words.index("--format") + 1] if "--format" in words else None
    assert plan_outputs(paths, OutputFormat(again) if again else None) == planned
    assert ("--format" in words) == (fmt is not None)
