#!/usr/bin/env bash
# Install the non-Python tools the benchmarks use (idempotent, quiet).
# wrk (Debian): the HTTP load generator of benchmarks/generate_bench.py. Without it, and
# without root to install it, the benchmark falls back to its Python load generator.
set -euo pipefail

if ! command -v wrk >/dev/null 2>&1; then
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
    else
        echo "install-bench-tools: wrk not installed (apt-get install wrk); using Python load" >&2
    fi
fi
