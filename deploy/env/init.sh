#!/usr/bin/env bash
# Create the git-ignored env files of the compose stack from the *.env.example files beside this script,
# and fill the secrets this stack can make itself: the ingress path secret, the poller's admin token and
# Grafana's admin password. Existing files and values are never overwritten, so running it again is safe.
# The Trio API key and tenant are yours to fill in poller.env (or use the demo: see deploy/README.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

random_secret() {  # 43 URL-safe characters (256 bits), what the ingress accepts as a path secret
    head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'
}

# fill KEY in FILE with VALUE when the line is present and empty
fill() {
    local file=$1 key=$2 value=$3
    if grep -q "^${key}=$" "$file"; then
        sed -i.bak "s|^${key}=$|${key}=${value}|" "$file" && rm -f "$file.bak"
        echo "  $file: generated $key"
    fi
}

for example in *.env.example; do
    target=${example%.example}
    if [[ -e $target ]]; then
        echo "  $target exists, kept"
    else
        cp "$example" "$target"
        chmod 600 "$target"
        echo "  $target created from $example"
    fi
done

fill ingress.env JOBSYNC_INGRESS_PATH_SECRETS "$(random_secret)"
fill poller.env JOBSYNC_POLLER_ADMIN_TOKEN "$(random_secret)"
fill grafana.env GF_SECURITY_ADMIN_PASSWORD "$(random_secret)"

# The demo simulator registers the webhook with the ingress's (first) path secret.
secret=$(sed -n 's/^JOBSYNC_INGRESS_PATH_SECRETS=\([^,]*\).*/\1/p' ingress.env)
if [[ -n $secret ]] && grep -q '<path secret>' simulator.env; then
    sed -i.bak "s|<path secret>|${secret}|" simulator.env && rm -f simulator.env.bak
    echo "  simulator.env: webhook URL uses the ingress path secret"
fi

if ! grep -q '^JOBSYNC_POLLER_API_KEY=.' poller.env; then
    echo "Next: set JOBSYNC_POLLER_TENANT and JOBSYNC_POLLER_API_KEY in $(pwd)/poller.env (or run the demo)."
fi
