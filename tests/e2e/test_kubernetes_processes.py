"""The base manifests' containers, started on this machine exactly as a cluster would start
them: same command and args (the image's entry point and the container's args), same
environment (image ENV, then the ConfigMap, the Secret and the container's env, in the
kubelet's order), each emptyDir a fresh folder.

What differs from a cluster is only what one host imposes: every pod listens on its own
loopback port instead of its own IP, mount paths named in the environment point at the
folders standing in for them, and S3 is a local S3-compatible server (moto) whose address
goes into the ConfigMap as GENKEEP_S3_ENDPOINT_URL, as it would for MinIO.
"""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from moto.server import ThreadedMotoServer
from sqlalchemy import select

from genkeep.db.database import Database
from genkeep.db.migrate import head_revision
from genkeep.db.models import Task
from tests.support.kubernetes import (
    SECRET_EXAMPLES,
    Manifest,
    argv,
    environment,
    find,
    image,
    pod_spec,
    read_env_file,
    render,
)
from tests.support.server import free_port, pid_of

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@dataclass
class Pod:
    """One container of a workload, running as a process on this host."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    port: int | None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, grace_s: float) -> int:
        """SIGTERM, then SIGKILL after the pod's grace period, as the kubelet does."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        return self.process.returncode


class Node:
    """Starts containers of rendered manifests as processes; stops them all at the end."""

    def __init__(self, manifests: tuple[Manifest, ...], secrets: dict[str, str], root: Path):
        self.manifests, self.secrets, self.root = manifests, secrets, root
        self.pods: list[Pod] = []

    def start(self, kind: str, name: str, argv_override: list[str] | None = None) -> Pod:
        workload = find(self.manifests, kind, name)
        [container] = pod_spec(workload)["containers"]
        pod_dir = self.root / f"{name}-{len(self.pods)}"
        mounts = {m["mountPath"]: pod_dir / m["name"] for m in container["volumeMounts"]}
        for folder in mounts.values():
            folder.mkdir(parents=True)

        def on_host(value: str) -> str:
            for path, folder in mounts.items():
                if value == path or value.startswith(path + "/"):
                    return str(folder) + value[len(path) :]
            return value

        # The root filesystem is read-only: where genkeep writes must be a mounted volume.
        for writable in (image().env["GENKEEP_DATA_DIR"], image().workdir, "/tmp"):
            assert on_host(writable) != writable, f"{name}: {writable} is not a volume"
        declared = environment(container, self.manifests, self.secrets)
        env = {key: on_host(value) for key, value in declared.items()}
        # PATH finds the genkeep console script, as the image's PATH finds /opt/genkeep/bin's.
        env["PATH"] = f"{Path(sys.executable).parent}:/usr/bin:/bin"
        env["HOME"] = on_host(image().workdir)
        env["TMPDIR"] = on_host("/tmp")
        port = None
        if container.get("ports"):
            port = free_port()
            env["GENKEEP_HOST"], env["GENKEEP_PORT"] = "127.0.0.1", str(port)
        args = argv_override or argv(container)
        assert args[0] == "genkeep"
        log_path = pod_dir / "log.txt"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(Path(sys.executable).parent / args[0]), *args[1:]],
                env=env,
                cwd=on_host(image().workdir),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        pod = Pod(name, process, log_path, port)
        self.pods.append(pod)
        return pod

    def ready(self, pod: Pod, timeout_s: float = 60) -> None:
        """Wait for the readiness probe of the pod's workload to pass."""
        [container] = pod_spec(find(self.manifests, "Deployment", pod.name))["containers"]
        probe = container["readinessProbe"]["httpGet"]["path"]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert pod.process.poll() is None, f"{pod.name} exited:\n{pod.log()}"
            try:
                if httpx.get(pod.url + probe, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{pod.name} never became ready:\n{pod.log()}")

    def stop_all(self) -> None:
        for pod in self.pods:
            pod.stop(grace_s=10)


@pytest.fixture
def node(
    request: pytest.FixtureRequest, empty_db_url: str, s3_endpoint: str, tmp_path: Path
) -> Iterator[Node]:
    manifests = copy.deepcopy(render("base"))
    config = find(manifests, "ConfigMap", "genkeep-config")
    config["data"] = {**config["data"], "GENKEEP_S3_ENDPOINT_URL": s3_endpoint}
    secrets = {
        "GENKEEP_DATABASE_URL": empty_db_url,
        "GENKEEP_S3_ACCESS_KEY_ID": "genkeep-e2e",
        "GENKEEP_S3_SECRET_ACCESS_KEY": "genkeep-e2e-secret",
        "GENKEEP_OPENAI_API_KEY": "sk-not-used-by-the-builtin-generator",
        "GENKEEP_SIGNING_KEY": "e2e-signing-key-of-at-least-32-bytes",
    }
    # Every key the manifests' Secret documents is given, and no other.
    assert set(secrets) == set(read_env_file(SECRET_EXAMPLES["base"]))
    started = Node(manifests, secrets, tmp_path)
    try:
        yield started
    finally:
        started.stop_all()
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            for pod in started.pods:
                print(f"\n===== {pod.name} (pid {pod.process.pid}) =====\n{pod.log()}")


@pytest.mark.parametrize("empty_db_url", ["postgresql"], indirect=True)
async def test_manifest_processes_migrate_serve_and_run_a_generate_and_an_export(
    node: Node, empty_db_url: str, s3_endpoint: str
) -> None:
    # The migration Job, twice at once, on a fresh database.
    migrations = [node.start("Job", "genkeep-db-upgrade") for _ in range(2)]
    for migration in migrations:
        assert migration.process.wait(timeout=120) == 0, migration.log()
        assert migration.log().strip().endswith(f"database at revision {head_revision()}")
    apis = [node.start("Deployment", "genkeep-api") for _ in range(2)]
    workers = [node.start("Deployment", "genkeep-worker") for _ in range(2)]
    for api in apis:
        node.ready(api)
    # An API key, made as `kubectl exec deploy/genkeep-api -- genkeep keys create` would.
    keys = node.start("Deployment", "genkeep-api", ["genkeep", "keys", "create", "--owner", "e2e"])
    assert keys.process.wait(timeout=60) == 0, keys.log()
    token = keys.log().strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}

    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        job = await client.post(f"{apis[0].url}/v1/jobs", json={"title": "on kubernetes"})
        assert job.status_code == 201, job.text
        job_id = job.json()["id"]
        generate = await submit(
            client, apis[0].url, job_id, "gen", {"kind": "generate", "payload": {"prompt": "Hi"}}
        )
        generated = await completed(client, apis[1].url, generate)
        export = await submit(
            client,
            apis[1].url,
            job_id,
            "pdf",
            {
                "kind": "export",
                "payload": {"formats": ["pdf"], "result_id": generated["result"]["result_id"]},
            },
        )
        await completed(client, apis[0].url, export)
        artifacts = (await client.get(f"{apis[0].url}/v1/jobs/{job_id}/artifacts")).json()
        [artifact] = artifacts
        download = await client.get(
            f"{apis[1].url}/v1/artifacts/{artifact['id']}/download", follow_redirects=True
        )
        assert download.status_code == 200
        assert download.content.startswith(b"%PDF-")  # rendered by WeasyPrint in a worker
        assert str(download.url).startswith(s3_endpoint)  # a presigned URL of the bucket

    # The worker pods ran both tasks; the API pods ran none (GENKEEP_SERVE_WORKER=false).
    database = Database(empty_db_url)
    try:
        async with database.reading() as session:
            ran_on = (await session.execute(select(Task.worker_id))).scalars().all()
    finally:
        await database.dispose()
    pids = {worker.process.pid for worker in workers}
    assert len(ran_on) == 2 and all(pid_of(str(w)) in pids for w in ran_on)
    # SIGTERM: idle workers exit 0 well within the Deployment's grace period.
    grace = pod_spec(find(render("base"), "Deployment", "genkeep-worker"))[
        "terminationGracePeriodSeconds"
    ]
    assert [worker.stop(grace_s=grace) for worker in workers] == [0, 0]


async def submit(
    client: httpx.AsyncClient, api: str, job_id: str, key: str, body: dict[str, object]
) -> str:
    response = await client.post(
        f"{api}/v1/jobs/{job_id}/tasks", json=body, headers={"Idempotency-Key": key}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def completed(client: httpx.AsyncClient, api: str, task_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    task: dict[str, Any] = {}
    while time.monotonic() < deadline:
        task = (await client.get(f"{api}/v1/tasks/{task_id}")).json()
        if task["status"] in ("completed", "failed", "cancelled"):
            assert task["status"] == "completed", task
            return task
        await asyncio.sleep(0.2)
    raise AssertionError(f"task {task_id} did not finish: {task}")
