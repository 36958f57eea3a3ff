#!/usr/bin/env bash
# Install the non-Python tools the test suite runs into ./.tools (idempotent, quiet).
# Azurite: the Azure Blob Storage emulator behind tests/integration/test_blobs_azure.py.
# faketime (Debian): runs a process on a shifted clock, for tests/e2e/test_clock_skew.py.
# chromium (Debian): the browser Playwright drives in tests/e2e/test_console.py.
set -euo pipefail

if ! command -v faketime >/dev/null 2>&1; then
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && apt-get install -y -qq faketime) >/dev/null
    else
        echo "install-test-tools: faketime is required (apt-get install faketime, as root)" >&2
        exit 1
    fi
fi

if [[ ! -x /usr/bin/chromium ]]; then
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null
    else
        echo "install-test-tools: /usr/bin/chromium is required (apt-get install chromium, as root)" >&2
        exit 1
    fi
fi

AZURITE_VERSION="3.35.0"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
installed="$tools/node_modules/azurite/package.json"

if ! command -v npm >/dev/null 2>&1; then
    echo "install-test-tools: npm is required to install Azurite (apt-get install nodejs npm)" >&2
    exit 1
fi

binary="$tools/node_modules/.bin/azurite-blob"
# -x follows the symlink: an interrupted install leaves package.json but no runnable dist/.
if [[ -f "$installed" ]] && grep -q "\"version\": \"$AZURITE_VERSION\"" "$installed" \
    && [[ -x "$binary" ]]; then
    exit 0
fi

rm -rf "$tools"
mkdir -p "$tools"
npm install --prefix "$tools" --no-audit --no-fund --loglevel=error --no-save \
    "azurite@$AZURITE_VERSION" >/dev/null
test -x "$binary"
