"""Offline checks of the deploy files: the compose file against the Compose specification,
every kustomize-built manifest of every overlay against the Kubernetes schemas, and the
conventions the operations guide promises (probes, resources, security context, ...).

The Kubernetes built-in kinds are checked with kubernetes-validate's schemas (strict: an
unknown field fails). It has no schema for the operators' kinds (Strimzi, CloudNativePG,
OT redis-operator), so those, and only those, are checked against the CRDs' own
openAPIV3Schema, vendored under scripts/schemas/crds/ and made strict the same way.

kustomize comes from $PHOTOGRAM_KUSTOMIZE or PATH (scripts/validate-deploy.sh installs
it); without it the kustomize tests are skipped, unless PHOTOGRAM_REQUIRE_DEPLOY_TOOLS=1.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError

from .deploy_files import ROOT, SERVICES, compose, dockerfile_images, migrate_commands

K8S = ROOT / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
CRD_SCHEMAS = ROOT / "scripts" / "schemas" / "crds"
# The oldest Kubernetes the manifests support (preStop `sleep` is on by default from 1.30)
# and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())
# Kinds that kubernetes-validate has no schema for: checked against the vendored CRDs.
OPERATOR_KINDS = {
    ("kafka.strimzi.io/v1", "Kafka"),
    ("kafka.strimzi.io/v1", "KafkaNodePool"),
    ("kafka.strimzi.io/v1", "KafkaTopic"),
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("redis.redis.opstreelabs.in/v1beta2", "Redis"),
    ("redis.redis.opstreelabs.in/v1beta2", "RedisCluster"),
}


# ------------------------------------------------------------------ compose


def test_compose_file_matches_the_compose_specification() -> None:
    result = subprocess.run(  # noqa: S603
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(ROOT / "docker-compose.yml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_every_service_from_its_dockerfile_target() -> None:
    services = compose()["services"]
    images = dockerfile_images()
    assert set(images) == set(SERVICES)
    for name in SERVICES:
        service = services[name]
        assert service["build"]["target"] == name
        # The command is the image's CMD: compose must not override it.
        assert "command" not in service, f"{name} overrides the Dockerfile's CMD"
        assert service.get("read_only") is True
        assert all(dep.get("condition") for dep in service["depends_on"].values())


def test_compose_runs_the_migrations_before_their_services() -> None:
    services = compose()["services"]
    migrations = migrate_commands()
    assert set(migrations) == {
        "user-service",
        "post-service",
        "media-service",
        "notification-service",
    }
    images = dockerfile_images()
    for target, command in migrations.items():
        assert command == [*images[target].command, "migrate"]
        migration = next(n for n, s in services.items() if s.get("command") == command)
        condition = services[target]["depends_on"][migration]["condition"]
        assert condition == "service_completed_successfully"


def test_every_image_runs_as_non_root_with_a_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "USER 10001:10001" in text
    assert text.count("HEALTHCHECK ") == len(SERVICES)
    assert "uv sync --frozen --no-dev" in text


# --------------------------------------------------------------- kubernetes


def kustomize() -> list[str] | None:
    configured = os.environ.get("PHOTOGRAM_KUSTOMIZE")
    if configured:
        return [configured]
    if shutil.which("kustomize"):
        return ["kustomize"]
    return None


@cache
def built(overlay: str) -> tuple[dict[str, Any], ...]:
    """Build an overlay from a copy of k8s/ with the example secrets in place."""
    command = kustomize()
    if command is None:
        # tests/deploy/conftest.py collects this module only where kustomize is found.
        pytest.fail("kustomize not found: run scripts/validate-deploy.sh")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        copy_root = Path(tmp) / "k8s"
        shutil.copytree(K8S, copy_root)
        for example in copy_root.rglob("*.env.example"):
            target = example.with_name(example.name.removesuffix(".example"))
            if not target.exists():
                shutil.copy(example, target)
        result = subprocess.run(  # noqa: S603
            [*command, "build", str(copy_root / "overlays" / overlay)],
            capture_output=True,
            text=True,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def strict(schema: Any) -> Any:
    """Reject unknown fields, as the API server's strict field validation does."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


@cache
def crd_validator(api_version: str, kind: str) -> jsonschema.Draft7Validator:
    group, version = api_version.split("/")
    schema = json.loads((CRD_SCHEMAS / f"{group}_{kind.lower()}_{version}.json").read_text())
    schema = strict(schema)
    # The CRD schemas leave metadata open; check the fields every object needs.
    schema["properties"]["metadata"] = {"type": "object", "required": ["name"]}
    return jsonschema.Draft7Validator(schema)


def name_of(doc: dict[str, Any]) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_overlays_are_dev_and_prod() -> None:
    assert set(OVERLAYS) == {"dev", "prod"}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_manifest_matches_its_schema(overlay: str, version: str) -> None:
    failures = []
    for doc in built(overlay):
        key = (doc["apiVersion"], doc["kind"])
        if key in OPERATOR_KINDS:
            errors = sorted(crd_validator(*key).iter_errors(doc), key=lambda e: list(e.path))
            failures += [
                f"{name_of(doc)}: {'.'.join(map(str, e.path))}: {e.message}" for e in errors
            ]
            continue
        try:
            kubernetes_validate.validate(copy.deepcopy(doc), version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(map(str, error.path))
            failures.append(f"{name_of(doc)}: {path}: {error.message}")
        except SchemaNotFoundError:
            failures.append(f"{name_of(doc)}: no schema for {doc['apiVersion']} {doc['kind']}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_has_probes_resources_and_a_restricted_context(overlay: str) -> None:
    docs = built(overlay)
    deployments = {n: d for n, d in of_kind(docs, "Deployment").items() if n in SERVICES}
    assert set(deployments) == set(SERVICES)
    images = dockerfile_images()
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert "command" not in container, name
        assert "args" not in container, name
        assert container["image"].split(":")[0].endswith(f"photogram/{name}")
        assert container["ports"][0]["containerPort"] == images[name].port
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert probe in container, f"{name} lacks {probe}"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
        assert "memory" in container["resources"]["limits"], name
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["terminationGracePeriodSeconds"] >= 30
        assert "preStop" in container["lifecycle"]
        assert "replicas" not in deployment["spec"], f"{name}: the HPA owns the count"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_has_an_hpa_and_a_pdb(overlay: str) -> None:
    docs = built(overlay)
    hpas = of_kind(docs, "HorizontalPodAutoscaler")
    pdbs = of_kind(docs, "PodDisruptionBudget")
    for name in SERVICES:
        assert hpas[name]["apiVersion"] == "autoscaling/v2"
        assert hpas[name]["spec"]["scaleTargetRef"]["name"] == name
        assert hpas[name]["spec"]["minReplicas"] <= hpas[name]["spec"]["maxReplicas"]
        assert pdbs[name]["apiVersion"] == "policy/v1"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_topics_fit_the_brokers_and_the_workers(overlay: str) -> None:
    docs = built(overlay)
    topics = {t["spec"]["topicName"]: t["spec"] for t in of_kind(docs, "KafkaTopic").values()}
    assert set(topics) == {
        "photogram.posts.v1",
        "photogram.follows.v1",
        "photogram.engagement.v1",
        "photogram.deadletters.v1",
    }
    brokers = sum(p["spec"]["replicas"] for p in of_kind(docs, "KafkaNodePool").values())
    for spec in topics.values():
        assert spec["replicas"] <= brokers
        min_isr = int(spec["config"]["min.insync.replicas"])
        assert min_isr < spec["replicas"] or spec["replicas"] == 1
    # Consumers past the partition count sit idle.
    worker = of_kind(docs, "HorizontalPodAutoscaler")["fanout-worker"]["spec"]
    assert worker["maxReplicas"] <= topics["photogram.posts.v1"]["partitions"]
    (config,) = [
        c for n, c in of_kind(docs, "ConfigMap").items() if n.startswith("photogram-config")
    ]
    partitions = int(config["data"]["PHOTOGRAM_KAFKA_PARTITIONS"])
    assert partitions == topics["photogram.posts.v1"]["partitions"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migration_jobs_run_the_compose_migrate_commands(overlay: str) -> None:
    jobs = of_kind(built(overlay), "Job")
    commands = sorted(
        job["spec"]["template"]["spec"]["containers"][0]["args"] for job in jobs.values()
    )
    assert commands == sorted(migrate_commands().values())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_is_committed(overlay: str) -> None:
    for doc in built(overlay):
        if doc["kind"] == "Secret":
            # Only generated from the git-ignored env files (here: the examples).
            assert doc["metadata"]["name"].rsplit("-", 1)[0] in {
                "photogram-secrets",
                "photogram-s3",
            }
    tracked = subprocess.run(
        ["git", "ls-files", "k8s"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert not [p for p in tracked if p.endswith(("secrets.env", "s3.env"))]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_redis_keeps_timelines_as_listpacks(overlay: str) -> None:
    docs = built(overlay)
    config = of_kind(docs, "ConfigMap")["redis-timelines-config"]["data"]
    assert "zset-max-listpack-entries 1024" in config["redis-additional.conf"]
    redis = [d for d in docs if d["kind"] in {"Redis", "RedisCluster"}]
    assert len(redis) == 1
    spec = redis[0]["spec"]
    redis_configs = [spec.get("redisConfig"), spec.get("redisLeader", {}).get("redisConfig")]
    assert any(c and c["additionalRedisConfig"] == "redis-timelines-config" for c in redis_configs)
