"""Azurite, the Azure Blob Storage emulator, on loopback: the ``azurite`` fixture.

Installed by ``scripts/install-test-tools.sh`` into ``.tools/``; without it the tests that
use it fail (they never skip). Azurite checks SAS signatures and expiry like Azure does,
and, like Azure, sends no CORS headers for a container without CORS rules.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AZURITE = REPO / ".tools" / "node_modules" / ".bin" / "azurite-blob"
# Azurite's fixed development account (public, documented by Microsoft).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
START_TIMEOUT_S = 30


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A connection string to a fresh Azurite blob service on a free loopback port."""
    if not AZURITE.exists():
        pytest.fail(
            f"Azurite is not installed at {AZURITE.relative_to(REPO)}: "
            "run scripts/install-test-tools.sh (make test does) — it needs node and npm.",
            pytrace=False,
        )
    if shutil.which("node") is None:
        pytest.fail("Azurite needs Node.js on PATH (apt-get install nodejs)", pytrace=False)
    workdir = tmp_path_factory.mktemp("azurite")
    log_path = workdir / "azurite.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(AZURITE),
                *("--blobHost", "127.0.0.1", "--blobPort", "0"),
                *("--location", str(workdir / "data")),
                *("--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        port = _wait_for_port(process, log_path)
        yield (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_port(process: subprocess.Popen[bytes], log_path: Path) -> int:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        found = re.search(rb"listens on http://127\.0\.0\.1:(\d+)", log_path.read_bytes())
        if found:
            return int(found.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    log = log_path.read_text(errors="replace")
    pytest.fail(f"Azurite did not start (exit {process.poll()}):\n{log}", pytrace=False)
