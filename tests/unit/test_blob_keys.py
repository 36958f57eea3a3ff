"""Blob keys: the one rule every store enforces before touching storage."""

from __future__ import annotations

from typing import Any

import pytest

from genkeep.blobs import content_disposition, validate_key
from genkeep.blobs.store import MAX_KEY_LENGTH, check_filename, check_ttl, validate_prefix
from genkeep.errors import BadInput, InvalidBlobKey

ACCEPTED = [
    "a",
    "report.pdf",
    "jobs/j-1/artifacts/v1.docx",
    "A_b-C.9/x.tar.gz",
    "...",
    "..a",
    "a..",
    ".hidden",
    "-dash",
    "/".join(["s"] * 256),
    "k" * 255 + "/" + "x" * 254 + "/y",  # exactly MAX_KEY_LENGTH
]

REFUSED = [
    ("", "empty"),
    (".", "'.' or '..'"),
    ("..", "'.' or '..'"),
    ("../x", "'.' or '..'"),
    ("a/../b", "'.' or '..'"),
    ("a/./b", "'.' or '..'"),
    ("a/..", "'.' or '..'"),
    ("/abs", "leading '/'"),
    ("/etc/passwd", "leading '/'"),
    ("a\\b", "'\\'"),
    ("..\\x", "'\\'"),
    ("a//b", "empty segments"),
    ("a/", "empty segments"),
    ("a/b/", "empty segments"),
    ("x" * (MAX_KEY_LENGTH + 1), "at most 512"),
    ("s" * 256, "at most 255"),
    ("ré/sumé.pdf", "characters"),
    ("a b", "characters"),
    ("a\x00b", "characters"),
    ("a\nb", "characters"),
    ("a%2e%2e", "characters"),
    ("a~tmp", "characters"),
    ("a:b", "characters"),
    ("ａ", "characters"),  # fullwidth 'a' must not pass as ASCII
    ("١٢", "characters"),  # Arabic-Indic digits are \d in Unicode regexes
]


@pytest.mark.parametrize("key", ACCEPTED)
def test_accepted_keys(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(("key", "reason"), REFUSED)
def test_refused_keys_say_why(key: str, reason: str) -> None:
    with pytest.raises(InvalidBlobKey) as caught:
        validate_key(key)
    assert reason in caught.value.detail
    assert caught.value.status == 422
    assert caught.value.code == "invalid-blob-key"


@pytest.mark.parametrize("key", [None, b"a", 1])
def test_non_string_keys_are_refused(key: Any) -> None:
    with pytest.raises(InvalidBlobKey):
        validate_key(key)


@pytest.mark.parametrize("prefix", ["", "a", "a/", "jobs/j1/", "docs/b"])
def test_accepted_prefixes(prefix: str) -> None:
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["/", "../", "a//", "/a", "a/../", "a\\"])
def test_refused_prefixes(prefix: str) -> None:
    with pytest.raises(InvalidBlobKey):
        validate_prefix(prefix)


@pytest.mark.parametrize(
    ("filename", "header"),
    [
        (None, "attachment"),
        ("", "attachment"),
        ("report.pdf", 'attachment; filename="report.pdf"'),
        ("a b.md", 'attachment; filename="a b.md"'),
        (
            'say "hi".txt',
            "attachment; filename=\"say _hi_.txt\"; filename*=UTF-8''say%20%22hi%22.txt",
        ),
        (
            "résumé.pdf",
            "attachment; filename=\"resume.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf",
        ),
        (
            "日本語.md",
            "attachment; filename=\"___.md\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC%E8%AA%9E.md",
        ),
        ("x\r\nSet-Cookie: a=b", 'attachment; filename="x__Set-Cookie: a=b"'),
        ("../../etc/passwd", 'attachment; filename=".._.._etc_passwd"'),
    ],
)
def test_content_disposition(filename: str | None, header: str) -> None:
    assert content_disposition(filename) == header
    assert "\r" not in header and "\n" not in header


def test_filename_and_ttl_bounds() -> None:
    assert check_filename("") is None
    assert check_filename("a.pdf") == "a.pdf"
    with pytest.raises(BadInput):
        check_filename("x" * 256)
    assert check_ttl(1) == 1
    for bad in (0, -1, 7 * 24 * 3600 + 1, True):
        with pytest.raises(BadInput):
            check_ttl(bad)
