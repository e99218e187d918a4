"""Offline checks of the deploy files: the compose file against the Compose specification,
every kustomize-built manifest of every overlay against the Kubernetes schemas, and the
conventions the operations guide promises (probes, resources, security context, ...).

The Kubernetes built-in kinds are checked with kubernetes-validate's schemas (strict: an
unknown field fails). It has no schema for the operators' kinds (Strimzi, CloudNativePG,
OT redis-operator, Prometheus Operator, cert-manager), so those, and only those, are
checked against the CRDs' own
openAPIV3Schema, vendored under scripts/schemas/crds/ and made strict the same way.

kustomize comes from $PHOTOGRAM_KUSTOMIZE or PATH (scripts/validate-deploy.sh installs
it); without it the kustomize tests are skipped, unless PHOTOGRAM_REQUIRE_DEPLOY_TOOLS=1.
"""

from __future__ import annotations

import copy
import json
import os
import re
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
    ("postgresql.cnpg.io/v1", "ScheduledBackup"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("cert-manager.io/v1", "Certificate"),
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
                "photogram-backup",  # photogram-backup-s3, by its exact name
            }
    tracked = subprocess.run(
        ["git", "ls-files", "k8s"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert not [p for p in tracked if p.endswith(("secrets.env", "s3.env", "backup-s3.env"))]


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


# ------------------------------------------------------------ the cluster's edges

# Who calls whom (each app.py's peer_client): the pods that may open a connection to each
# service's port. The gateway is reached from the ingress controller's namespace only.
CALLERS = {
    "gateway": set(),
    "user-service": {"gateway", "feed-service", "fanout-worker"},
    "post-service": {"gateway", "media-service", "feed-service", "fanout-worker"},
    "media-service": {"gateway"},
    "feed-service": {"gateway", "fanout-worker"},
    "fanout-worker": {"gateway"},
    "notification-service": {"gateway"},
}
# Each backend's clients: the services owning its data (and their migration Jobs).
DATABASE_CLIENTS = {
    "users-db": {"user-service", "users-migrate"},
    "posts-db": {"post-service", "posts-migrate"},
    "media-db": {"media-service", "media-migrate"},
    "notifications-db": {"notification-service", "notifications-migrate"},
}
REDIS_CLIENTS = {"gateway", "user-service", "feed-service", "fanout-worker"}
KAFKA_CLIENTS = set(SERVICES) - {"gateway"}
INGRESS_NAMESPACE = "ingress-nginx"
MONITORING_NAMESPACE = "monitoring"


def selected_names(selector: dict[str, Any]) -> set[str]:
    """The app.kubernetes.io/name values a pod selector matches (In or matchLabels)."""
    names = set()
    if "app.kubernetes.io/name" in selector.get("matchLabels", {}):
        names.add(selector["matchLabels"]["app.kubernetes.io/name"])
    for expression in selector.get("matchExpressions", []):
        if expression["key"] == "app.kubernetes.io/name" and expression["operator"] == "In":
            names |= set(expression["values"])
    return names


def peers_allowed(policies: list[dict[str, Any]], pod: dict[str, str]) -> dict[str, set[str]]:
    """For the pod with these labels: the pods (by name, same namespace) and namespaces
    every policy selecting it lets in; ports are not looked at."""
    pods: set[str] = set()
    namespaces: set[str] = set()
    for policy in policies:
        selector = policy["spec"]["podSelector"]
        labels = selector.get("matchLabels", {})
        if any(pod.get(k) != v for k, v in labels.items()):
            continue
        if not all(
            e["operator"] == "In" and pod.get(e["key"]) in e["values"]
            for e in selector.get("matchExpressions", [])
        ):
            continue
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                if "namespaceSelector" in peer:
                    namespaces.add(
                        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                    )
                elif "podSelector" in peer:
                    pods |= selected_names(peer["podSelector"])
    return {"pods": pods, "namespaces": namespaces}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_by_default_and_allow_only_the_callers(overlay: str) -> None:
    docs = built(overlay)
    policies = list(of_kind(docs, "NetworkPolicy").values())
    deny = of_kind(docs, "NetworkPolicy")["default-deny-ingress"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}
    for policy in policies:
        assert policy["spec"]["policyTypes"] == ["Ingress"], policy["metadata"]["name"]
    for name, callers in CALLERS.items():
        allowed = peers_allowed(policies, {"app.kubernetes.io/name": name})
        assert allowed["pods"] == callers, name
        expected = {MONITORING_NAMESPACE} | ({INGRESS_NAMESPACE} if name == "gateway" else set())
        assert allowed["namespaces"] == expected, name
    for database, clients in DATABASE_CLIENTS.items():
        allowed = peers_allowed(policies, {"cnpg.io/cluster": database})
        assert allowed["pods"] == clients, database
        assert allowed["namespaces"] == {"cnpg-system"}, database
    redis = next(d for d in docs if d["kind"] in {"Redis", "RedisCluster"})
    if redis["kind"] == "Redis":
        pods = [{"app": "redis-timelines", "redis_setup_type": "standalone"}]
    else:
        pods = [
            {"app": f"redis-timelines-{role}", "redis_setup_type": "cluster"}
            for role in ("leader", "follower")
        ]
    for pod in pods:
        allowed = peers_allowed(policies, pod)
        assert allowed["pods"] == REDIS_CLIENTS, pod
        assert allowed["namespaces"] == {"ot-operators"}, pod
    # Kafka: Strimzi makes the listener's policy from its networkPolicyPeers.
    (listener,) = of_kind(docs, "Kafka")["photogram-kafka"]["spec"]["kafka"]["listeners"]
    (peer,) = listener["networkPolicyPeers"]
    assert selected_names(peer["podSelector"]) == KAFKA_CLIENTS


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_gateway_is_exposed_over_tls_and_never_its_metrics(overlay: str) -> None:
    from gateway.docs import DOCS_PATH
    from gateway.webclient import ASSETS_PATH, PAGES

    docs = built(overlay)
    (ingress,) = of_kind(docs, "Ingress").values()
    (certificate,) = of_kind(docs, "Certificate").values()
    spec = ingress["spec"]
    hosts = {rule["host"] for rule in spec["rules"]}
    (tls,) = spec["tls"]
    assert set(tls["hosts"]) == hosts == set(certificate["spec"]["dnsNames"])
    assert tls["secretName"] == certificate["spec"]["secretName"]
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/ssl-redirect"] == "true"
    paths = [p for rule in spec["rules"] for p in rule["http"]["paths"]]
    for path in paths:
        assert path["backend"]["service"]["name"] == "gateway"
        assert path["backend"]["service"]["port"] == {"name": "http"}

    def routed(request_path: str) -> bool:
        for path in paths:
            if path["pathType"] == "Exact" and request_path == path["path"]:
                return True
            prefix = path["path"].rstrip("/")
            if path["pathType"] == "Prefix" and (
                request_path == prefix or request_path.startswith(prefix + "/")
            ):
                return True
        return False

    for internal in ("/metrics", "/healthz", "/readyz", "/internal/users/1/followees"):
        assert not routed(internal), internal
    pages = [re.sub(r"\{[^}]+\}", "x", page) for page in PAGES]
    for needed in [*pages, "/api/feed", DOCS_PATH, f"{ASSETS_PATH}/app.js"]:
        assert routed(needed), needed


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_is_scraped_by_a_service_monitor(overlay: str) -> None:
    docs = built(overlay)
    (monitor,) = of_kind(docs, "ServiceMonitor").values()
    services = of_kind(docs, "Service")
    scraped = selected_names(monitor["spec"]["selector"])
    assert scraped == set(SERVICES)
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["honorLabels"] is True  # the samples' own `service` label
    for name in SERVICES:
        ports = {p["name"] for p in services[name]["spec"]["ports"]}
        assert endpoint["port"] in ports, name
    (rules,) = of_kind(docs, "PrometheusRule").values()
    assert rules["spec"]["groups"]
    dashboards = of_kind(docs, "ConfigMap")["photogram-dashboards"]
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    board = K8S / "components" / "monitoring" / "dashboards" / "photogram.json"
    assert json.loads(dashboards["data"]["photogram.json"]) == json.loads(board.read_text())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_database_is_backed_up_to_the_object_store(overlay: str) -> None:
    docs = built(overlay)
    clusters = of_kind(docs, "Cluster")
    scheduled = {
        b["spec"]["cluster"]["name"]: b["spec"] for b in of_kind(docs, "ScheduledBackup").values()
    }
    assert set(clusters) == set(DATABASE_CLIENTS) == set(scheduled)
    secrets = {s["metadata"]["name"]: s for s in docs if s["kind"] == "Secret"}
    for name, cluster in clusters.items():
        backup = cluster["spec"]["backup"]
        store = backup["barmanObjectStore"]
        assert store["destinationPath"].startswith("s3://"), name
        assert backup["retentionPolicy"], name
        assert store["wal"]["compression"]
        assert store["data"]["compression"]
        for ref in store["s3Credentials"].values():
            assert ref["key"] in secrets[ref["name"]]["data"], name
        assert scheduled[name]["method"] == "barmanObjectStore"
        assert len(scheduled[name]["schedule"].split()) == 6  # seconds first


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_namespace_enforces_the_restricted_pod_security_standard(overlay: str) -> None:
    docs = built(overlay)
    (namespace,) = of_kind(docs, "Namespace").values()
    labels = namespace["metadata"]["labels"]
    for mode in ("enforce", "warn", "audit"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    # The operators' pods meet it through their resources' security contexts.
    kafka = of_kind(docs, "Kafka")["photogram-kafka"]["spec"]
    for template, container in (
        (kafka["kafka"]["template"], "kafkaContainer"),
        (kafka["entityOperator"]["template"], "topicOperatorContainer"),
    ):
        assert template["pod"]["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert template[container]["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert template[container]["securityContext"]["allowPrivilegeEscalation"] is False
    redis = next(d for d in docs if d["kind"] in {"Redis", "RedisCluster"})["spec"]
    assert redis["podSecurityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    containers = (
        [redis]
        if "securityContext" in redis
        else [
            redis["redisLeader"],
            redis["redisFollower"],
        ]
    )
    for spec in containers:
        assert spec["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert spec["securityContext"]["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_topics_are_the_operators_and_never_made_by_the_apps(overlay: str) -> None:
    from photogram_contracts.events import ALL_TOPICS

    from photogram_common.bus import DEADLETTER_TOPIC

    docs = built(overlay)
    topics = {t["spec"]["topicName"]: t["spec"] for t in of_kind(docs, "KafkaTopic").values()}
    assert set(topics) == {*ALL_TOPICS, DEADLETTER_TOPIC}
    (config,) = [
        c for n, c in of_kind(docs, "ConfigMap").items() if n.startswith("photogram-config")
    ]
    assert config["data"]["PHOTOGRAM_KAFKA_CREATE_TOPICS"] == "false"
    if overlay == "prod":
        assert all(spec["replicas"] == 3 for spec in topics.values())
    # Worker ids are leased per process (photogram_common.workerids), never configured.
    assert "PHOTOGRAM_WORKER_ID" not in config["data"]
    for deployment in of_kind(docs, "Deployment").values():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert "PHOTOGRAM_WORKER_ID" not in {e["name"] for e in container.get("env", [])}
