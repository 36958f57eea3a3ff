"""The content hashes every key and checksum in genkeep is made of."""

from __future__ import annotations

import hashlib


def sha256_hex(data: str | bytes) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()
