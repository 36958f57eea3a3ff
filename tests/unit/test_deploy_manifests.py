"""The Kubernetes manifests, checked offline against the real tools.

kustomize renders base and overlay; kubernetes-validate checks every resource against the
API schemas of pinned Kubernetes releases, and the KEDA resources are checked against the
schema in tests/support/keda_schema.yaml. Then what the manifests ask of genkeep is checked
against genkeep itself: settings, commands and flags, probe paths, shutdown grace, where
it writes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from genkeep.api.app import create_app
from genkeep.config import Settings
from tests.support.kubernetes import (
    DOCKERFILE,
    KUBERNETES,
    REPO,
    SECRET_EXAMPLES,
    SECRET_NAME,
    UsageError,
    argv,
    environment,
    find,
    image,
    pod_spec,
    reached,
    read_env_file,
    render,
    workloads,
)

# The oldest and the newest release the manifests are meant for: AKS's oldest supported
# minor when this was written, and the newest the pinned kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.32.0", "1.37.0")
OVERLAYS = ("base", "aks")
KEDA_SCHEMA: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parents[1] / "support" / "keda_schema.yaml").read_text()
)
# What each workload must run: the role it plays, as a genkeep command.
ROLES = {
    "genkeep-api": "genkeep serve",
    "genkeep-worker": "genkeep worker",
    "genkeep-db-upgrade": "genkeep db upgrade",
    "genkeep-sweep": "genkeep ops sweep",
}
# A worker releases what is still running after its grace in about 2 s (measured); the
# margin covers that and a slow database.
RELEASE_MARGIN_S = 10


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifests_validate_against_kubernetes_schemas(overlay: str) -> None:
    manifests = render(overlay)
    for manifest in manifests:
        if manifest["apiVersion"].startswith("keda.sh/"):
            jsonschema.validate(manifest, keda_schema(manifest["kind"]))
            continue
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(manifest, version, strict=True)
    kinds = sorted(m["kind"] for m in manifests)
    autoscaler = ["ScaledObject", "TriggerAuthentication"] if overlay == "aks" else []
    expected = [
        "ConfigMap",
        "CronJob",
        "Deployment",
        "Deployment",
        "HorizontalPodAutoscaler" if overlay == "base" else "",
        "Job",
        "Namespace" if overlay == "aks" else "",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
        *autoscaler,
    ]
    assert kinds == sorted(kind for kind in expected if kind)


def test_validators_catch_what_they_are_here_for() -> None:
    """The checks above fail on the mistakes they guard against (a schema that accepts
    anything would pass every manifest)."""
    worker = find(render("base"), "Deployment", "genkeep-worker")
    misspelt = yaml.safe_load(yaml.safe_dump(worker))
    misspelt["spec"]["template"]["spec"]["terminationGracePeriodSecond"] = 45
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, KUBERNETES_VERSIONS[0], strict=True)
    scaled = find(render("aks"), "ScaledObject", "genkeep-worker")
    mistakes: list[Callable[[dict[str, Any]], object]] = [
        lambda s: s["spec"]["triggers"][0]["metadata"].update(targetQueryValue=4),
        lambda s: s["spec"].update(minReplicas=1),
        lambda s: s["spec"]["triggers"][0].pop("metadata"),
    ]
    for mistake in mistakes:
        broken = yaml.safe_load(yaml.safe_dump(scaled))
        mistake(broken)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, keda_schema("ScaledObject"))


def test_keda_trigger_names_real_parameters_and_matches_worker_concurrency() -> None:
    manifests = render("aks")
    [trigger] = find(manifests, "ScaledObject", "genkeep-worker")["spec"]["triggers"]
    assert trigger["type"] == "postgresql"
    assert set(trigger["metadata"]) <= set(KEDA_SCHEMA["postgresqlTriggerMetadata"])
    auth = find(manifests, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    [ref] = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] in KEDA_SCHEMA["postgresqlAuthParameters"]
    assert (ref["name"], ref["key"]) == (SECRET_NAME, "GENKEEP_DATABASE_URL")
    config = find(manifests, "ConfigMap", "genkeep-config")["data"]
    assert trigger["metadata"]["targetQueryValue"] == config["GENKEEP_WORKER_CONCURRENCY"]
    target = find(manifests, "ScaledObject", "genkeep-worker")["spec"]["scaleTargetRef"]
    assert find(manifests, target["kind"], target["name"])["kind"] == "Deployment"


def test_every_genkeep_variable_named_is_a_real_setting() -> None:
    named: dict[str, set[str]] = {}
    for path in [DOCKERFILE, REPO / "docs" / "deploy.md", *sorted(KUBERNETES.rglob("*"))]:
        if path.is_file():
            for name in re.findall(r"\bGENKEEP_[A-Z0-9_]+\b", path.read_text()):
                named.setdefault(name, set()).add(str(path.relative_to(REPO)))
    unknown = {name: where for name, where in named.items() if name not in setting_names()}
    assert unknown == {}
    assert "GENKEEP_DATABASE_URL" in named and "GENKEEP_SERVE_WORKER" in named


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_environment_is_valid_settings(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests = render(overlay)
    secrets = read_env_file(SECRET_EXAMPLES[overlay])
    for workload in workloads(manifests):
        for container in pod_spec(workload)["containers"]:
            env = environment(container, manifests, secrets)
            settings = settings_from(env, monkeypatch)
            assert settings.env == "production"
            assert settings.data_dir == Path(image().env["GENKEEP_DATA_DIR"])
            serves = workload["metadata"]["name"] == "genkeep-api"
            assert settings.serve_worker is not serves  # the API leaves tasks to workers
            expected = "azure" if overlay == "aks" else "s3"
            assert settings.blob_backend == expected


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_command_is_a_real_genkeep_command(overlay: str) -> None:
    roles = {}
    for workload in workloads(render(overlay)):
        [container] = pod_spec(workload)["containers"]
        roles[workload["metadata"]["name"]] = reached(argv(container))
    assert roles == ROLES


def test_command_check_refuses_what_genkeep_refuses() -> None:
    with pytest.raises(UsageError):
        reached(["genkeep", "worker", "--concurency", "4"])
    with pytest.raises(UsageError):
        reached(["genkeep", "db", "upgrade-all"])
    with pytest.raises(UsageError):
        reached(["genkeep", "serve", "--workers", "0"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probe_and_scrape_paths_exist_on_the_serving_port(overlay: str, tmp_path: Path) -> None:
    manifests = render(overlay)
    api = find(manifests, "Deployment", "genkeep-api")
    [container] = pod_spec(api)["containers"]
    secrets = read_env_file(SECRET_EXAMPLES[overlay])
    port = int(environment(container, manifests, secrets)["GENKEEP_PORT"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    annotations = api["spec"]["template"]["metadata"]["annotations"]
    probes = [container[kind]["httpGet"] for kind in PROBES]
    assert {ports[probe["port"]] for probe in probes} == {port}
    assert int(annotations["prometheus.io/port"]) == port
    assert find(manifests, "Service", "genkeep-api")["spec"]["ports"][0]["targetPort"] in ports
    healthcheck = re.search(r"/[a-z]+", image().healthcheck[-1])
    assert healthcheck is not None
    paths = {probe["path"] for probe in probes} | {
        annotations["prometheus.io/path"],
        healthcheck.group(),
    }
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/x.db", _env_file=None))
    # Probes and scrapers send GET; the OpenAPI document lists every route the app serves.
    gets = {path for path, operations in app.openapi()["paths"].items() if "get" in operations}
    assert paths == {"/healthz", "/readyz", "/metrics"} and paths <= gets
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_grace_period_outlasts_its_shutdown(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests = render(overlay)
    worker = find(manifests, "Deployment", "genkeep-worker")
    [container] = pod_spec(worker)["containers"]
    env = environment(container, manifests, read_env_file(SECRET_EXAMPLES[overlay]))
    grace = settings_from(env, monkeypatch).worker_shutdown_grace_s
    assert pod_spec(worker)["terminationGracePeriodSeconds"] >= grace + RELEASE_MARGIN_S


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_restricted_and_write_only_to_their_volumes(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests = render(overlay)
    uid, _, gid = image().user.partition(":")
    secrets = read_env_file(SECRET_EXAMPLES[overlay])
    for workload in workloads(manifests):
        spec = pod_spec(workload)
        pod = spec["securityContext"]
        assert (pod["runAsNonRoot"], pod["runAsUser"], pod["runAsGroup"]) == (
            True,
            int(uid),
            int(gid),
        )
        assert pod["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec["automountServiceAccountToken"] is False
        emptydirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert "memory" in container["resources"]["limits"]
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert set(mounts.values()) <= emptydirs
            data_dir = settings_from(
                environment(container, manifests, secrets), monkeypatch
            ).data_dir
            # genkeep writes under its data dir (metrics, a local signing key) and tempfiles.
            assert {str(data_dir), "/tmp"} <= set(mounts)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_come_from_the_secret_only(overlay: str) -> None:
    manifests = render(overlay)
    secret_keys = set(read_env_file(SECRET_EXAMPLES[overlay]))
    assert "GENKEEP_DATABASE_URL" in secret_keys
    config = find(manifests, "ConfigMap", "genkeep-config")["data"]
    assert not secret_keys & set(config)
    assert not secret_keys & set(image().env)
    assert not [m for m in manifests if m["kind"] == "Secret"]
    for workload in workloads(manifests):
        for container in pod_spec(workload)["containers"]:
            refs = [s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s]
            assert refs == [SECRET_NAME]
            assert not secret_keys & {v["name"] for v in container.get("env", [])}


PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def keda_schema(kind: str) -> dict[str, Any]:
    return {"$defs": KEDA_SCHEMA["$defs"], **KEDA_SCHEMA[kind]}


def setting_names() -> set[str]:
    names = set()
    for name, info in Settings.model_fields.items():
        names.add(f"GENKEEP_{name.upper()}")
        alias = info.validation_alias
        names.update(getattr(alias, "choices", []))
    return {name for name in names if name.startswith("GENKEEP_")}


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings exactly as a process started with ``env`` would read them."""
    with monkeypatch.context() as scoped:
        for name in [n for n in list(os.environ) if n.startswith("GENKEEP_")]:
            scoped.delenv(name)
        for name, value in env.items():
            scoped.setenv(name, value)
        return Settings(_env_file=None)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_guide_migration_step_selects_the_job_and_its_config_only(overlay: str) -> None:
    """docs/deploy.md applies the migration Job (and the ConfigMap it reads) before the rest
    with a label selector; it must select exactly those."""
    guide = (REPO / "docs" / "deploy.md").read_text()
    selector = re.search(r"kubectl apply -k \$K -l '([\w./-]+) in \(([\w,]+)\)'", guide)
    assert selector is not None
    key, values = selector.group(1), set(selector.group(2).split(","))
    chosen = [m for m in render(overlay) if m["metadata"].get("labels", {}).get(key) in values]
    assert sorted(m["kind"] for m in chosen) == ["ConfigMap", "Job"]
