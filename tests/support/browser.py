"""The browser the console's tests drive: Debian's Chromium (or ``GENKEEP_CHROMIUM``)."""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = Path(os.environ.get("GENKEEP_CHROMIUM", "/usr/bin/chromium"))
TIMEOUT_MS = 20_000
