"""Run schemathesis against a real genkeep server and read its figures from the JSON report.

Shared by the contract test in ``make test`` (a bounded example count) and ``make fuzz``
(thousands of cases per operation). The seed is fixed and printed, so a failure replays.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.jobs import confirmed_job, export_markdown

CONFIG = Path(__file__).resolve().parents[1] / "fuzz" / "schemathesis.toml"
SAMPLES = Path(__file__).resolve().parents[2] / "src" / "genkeep" / "extract" / "samples"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
)

# The report names failures by code; these are the codes of the checks above.
CHECK_OF_CODE = {
    "ST101": "not_a_server_error",
    "ST102": "not_a_server_error",
    "ST104": "content_type_conformance",
    "ST103": "status_code_conformance",
    "ST105": "content_type_conformance",
    "ST106": "content_type_conformance",
    "ST108": "response_schema_conformance",
    "ST109": "response_schema_conformance",
    "ST201": "negative_data_rejection",
    "ST202": "positive_data_acceptance",
}


@dataclass
class Figures:
    seed: int
    operations: int
    cases: int
    failures_by_check: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    exit_code: int = 0

    def line(self) -> str:
        names = [*CHECKS, *sorted(set(self.failures_by_check) - set(CHECKS))]
        failures = ", ".join(f"{c}={self.failures_by_check[c]}" for c in names)
        return (
            f"schemathesis seed={self.seed}: {self.operations} operations, {self.cases} cases, "
            f"failures by check: {failures}; errors={len(self.errors)}; {self.seconds:.0f} s"
        )


def seed_data(base_url: str, token: str) -> dict[str, str]:
    """Create one of each resource, so operations on ids get real ones (not only 404s)."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
        job = confirmed_job(client, "Contract")
        generated = client.post("/v1/generate", json={"prompt": "contract seed"}).json()
        task = export_markdown(client, job["id"], "contract-seed")
        run = client.post(
            "/v1/runs",
            json={"text": "Ada Lovelace wrote notes.", "ontology": _ontology()},
        ).json()
        artifacts: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while not artifacts and time.monotonic() < deadline:
            artifacts = client.get(f"/v1/jobs/{job['id']}/artifacts").json()
            time.sleep(0.2)
    return {
        "prompt_id": generated["prompt_id"],
        "result_id": generated["result_id"],
        "task_id": task["id"],
        "run_id": run["id"],
        "artifact_id": artifacts[0]["id"],
    }


def _ontology() -> str:
    return (SAMPLES / "ontology.ttl").read_text()


def write_config(path: Path, ids: dict[str, str]) -> Path:
    """The shared config plus, per id, the operations that take it use the seeded one."""
    lines = [CONFIG.read_text()]
    for name, value in ids.items():
        lines.append(
            f'\n[[operations]]\ninclude-path-regex = "\\\\{{{name}\\\\}}"\n'
            f'parameters = {{ "{name}" = "{value}" }}\n'
        )
    path.write_text("".join(lines))
    return path


def run_schemathesis(
    base_url: str, token: str, *, max_examples: int, seed: int, workdir: Path
) -> Figures:
    """The whole OpenAPI document, the listed checks, Bearer auth; figures from the report."""
    config = write_config(workdir / "schemathesis.toml", seed_data(base_url, token))
    report = workdir / "schemathesis-report.json"
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "run",
        f"{base_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(max_examples),
        "--seed",
        str(seed),
        # A generator limit, not a server answer: the smallest negative body of POST
        # /v1/export (a oneOf of three sources) trips the "large base example" check.
        "--suppress-health-check",
        "large_base_example",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    started = time.monotonic()
    with (workdir / "schemathesis.log").open("w") as log:
        # In workdir: schemathesis keeps a cache of crashes in its working directory.
        done = subprocess.run(
            command, stdout=log, stderr=subprocess.STDOUT, check=False, cwd=workdir
        )
    data = json.loads(report.read_text())
    figures = Figures(
        seed=int(data["seed"]),
        operations=int(data["operations"]["tested"]),
        cases=int(data["test_cases"]["generated"]),
        seconds=time.monotonic() - started,
        exit_code=done.returncode,
    )
    for failure in data["failures"]:
        check = CHECK_OF_CODE.get(failure.get("code", ""), str(failure.get("title")))
        figures.failures_by_check[check] += int(failure.get("count", 1))
    figures.errors = [json.dumps(error)[:500] for error in data["errors"]]
    return figures
