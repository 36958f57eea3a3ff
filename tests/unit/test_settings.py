"""Settings: every one is documented in .env.example, and the documented values parse."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from genkeep.config import GeneratorProfile, Settings

EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


@pytest.fixture(autouse=True)
def _code_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The code's own defaults: without the suite's GENKEEP_EXTRACT_DEFAULT (tests/conftest.py)."""
    monkeypatch.delenv("GENKEEP_EXTRACT_DEFAULT", raising=False)


def documented() -> dict[str, str]:
    pairs = re.findall(r"^#?\s*(GENKEEP_[A-Z0-9_]+)=(.*)$", EXAMPLE.read_text(), re.MULTILINE)
    return dict(pairs)


def test_every_setting_is_documented() -> None:
    names = set(documented())
    for field in Settings.model_fields:
        assert f"GENKEEP_{field.upper()}" in names, field


DOCS = EXAMPLE.parent / "docs"
_ROW = re.compile(r"^\| `(GENKEEP_[A-Z0-9_]+)`[^|]*\| ([^|]+) \|", re.MULTILINE)


def test_every_setting_is_documented_in_docs_with_its_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docs/, not only .env.example: the settings table of operations.md names every setting,
    and a default it gives as a literal (or as "unset") is the code's default."""
    docs = "\n".join(page.read_text() for page in sorted(DOCS.glob("*.md")))
    rows = dict(_ROW.findall(docs))
    defaults = Settings(_env_file=None)
    for field in Settings.model_fields:
        name = f"GENKEEP_{field.upper()}"
        assert name in rows, f"{name} is not in the settings table of docs/operations.md"
        cell = rows[name].strip()
        if cell.startswith("unset"):
            assert getattr(defaults, field) is None, (name, cell)
        elif re.fullmatch(r"`[^`]*`", cell):
            monkeypatch.setenv(name, cell.strip("`"))
            assert getattr(Settings(_env_file=None), field) == getattr(defaults, field), name
            monkeypatch.delenv(name)
    assert set(rows) <= {f"GENKEEP_{f.upper()}" for f in Settings.model_fields}, "stale rows"


def test_documented_defaults_parse_to_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    uncommented = re.findall(r"^(GENKEEP_[A-Z0-9_]+)=(.*)$", EXAMPLE.read_text(), re.MULTILINE)
    for name, value in uncommented:
        monkeypatch.setenv(name, value)
    from_example = Settings(_env_file=None)
    for name, _ in uncommented:
        monkeypatch.delenv(name)
    assert from_example.model_dump() == Settings(_env_file=None).model_dump()


def test_database_url_alias_and_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv("GENKEEP_PROFILES", '{"fast": {"model": "m", "temperature": 0}}')
    settings = Settings(_env_file=None)
    assert settings.database_url == "postgresql://u@h/db"
    assert settings.profile("fast") == ("fast", GeneratorProfile(model="m", temperature=0))
    assert settings.profile("missing") is None


def test_the_data_dir_is_one_per_user_whatever_the_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("GENKEEP_DATA_DIR", "GENKEEP_DATABASE_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    settings = Settings(_env_file=None)
    assert settings.data_dir == tmp_path / "xdg" / "genkeep"
    assert settings.database_url == f"sqlite:///{tmp_path / 'xdg' / 'genkeep' / 'genkeep.db'}"
    assert settings.database_is_default
    monkeypatch.chdir(tmp_path / "..")
    assert Settings(_env_file=None).database_url == settings.database_url


def test_a_chosen_data_dir_or_database_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GENKEEP_DATA_DIR", str(tmp_path / "here"))
    chosen = Settings(_env_file=None)
    assert chosen.database_url == f"sqlite:///{tmp_path / 'here' / 'genkeep.db'}"
    assert not chosen.database_is_default
    monkeypatch.setenv("GENKEEP_DATABASE_URL", "postgresql://u@h/db")
    assert Settings(_env_file=None).database_url == "postgresql://u@h/db"
    monkeypatch.setenv("GENKEEP_DATABASE_URL", "  ")
    with pytest.raises(ValueError, match="must not be empty"):
        Settings(_env_file=None)


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("127.0.0.1", 8123, "http://127.0.0.1:8123"),
        ("0.0.0.0", 9000, "http://127.0.0.1:9000"),
        ("::1", 8000, "http://[::1]:8000"),
        ("genkeep.internal", 80, "http://genkeep.internal:80"),
    ],
)
def test_download_urls_follow_the_servers_own_address_unless_set(
    monkeypatch: pytest.MonkeyPatch, host: str, port: int, expected: str
) -> None:
    monkeypatch.setenv("GENKEEP_HOST", host)
    monkeypatch.setenv("GENKEEP_PORT", str(port))
    assert Settings(_env_file=None).public_url == expected
    monkeypatch.setenv("GENKEEP_PUBLIC_URL", "https://genkeep.example.com")
    assert Settings(_env_file=None).public_url == "https://genkeep.example.com"


def test_a_trace_url_names_where_the_trace_id_goes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENKEEP_TRACE_URL", "http://jaeger:16686/trace/{trace_id}")
    assert Settings(_env_file=None).trace_url == "http://jaeger:16686/trace/{trace_id}"
    monkeypatch.setenv("GENKEEP_TRACE_URL", "http://jaeger:16686/trace/")
    with pytest.raises(ValueError, match="trace_id"):
        Settings(_env_file=None)
