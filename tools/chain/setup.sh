#!/usr/bin/env bash
# Installs the local chain tools used by the test suite (idempotent):
#   - anvil and ethers (the secrets API v2 tests sign with it), pinned in package.json /
#     package-lock.json, into tools/chain/node_modules;
#   - the compiled iExec PoCo contracts (@iexec/poco, pinned below) into tools/chain/artifacts/.
# The PoCo package cannot be `npm install`ed (it has git dependencies), so it is fetched with
# `npm pack` and only its compiled artifacts are extracted. Nothing here is committed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

POCO_VERSION="6.1.0"
POCO_INTEGRITY="sha512-BPbDtf2fgQuotr6rf74ACVdwlKqkErEZ8qLbTWM+2CIBj2EX3+6KBGWsFoudoOGjgT7vUJ3jeNX8SWvHzSHg6A=="
anvil="node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
dest="artifacts/poco-${POCO_VERSION}"

# Reinstall when the lock file changed since the last install (or nothing is installed).
lock_sum="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ ! -x "$anvil" ]] || [[ "$(cat node_modules/.sms-lock-sum 2>/dev/null)" != "$lock_sum" ]]; then
    npm ci --ignore-scripts --no-audit --no-fund
    echo "$lock_sum" >node_modules/.sms-lock-sum
fi
"$anvil" --version | head -1

if [[ ! -f "$dest/.complete" ]]; then
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack "@iexec/poco@${POCO_VERSION}" --silent >/dev/null)
    tarball="$tmp/iexec-poco-${POCO_VERSION}.tgz"
    got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
    if [[ "$got" != "$POCO_INTEGRITY" ]]; then
        echo "setup.sh: @iexec/poco@${POCO_VERSION} integrity mismatch: got $got" >&2
        exit 1
    fi
    rm -rf "$dest"
    mkdir -p "$dest"
    tar -xzf "$tarball" -C "$dest" --strip-components=1 \
        package/artifacts/contracts package/deployments/arbitrumSepolia package/package.json
    touch "$dest/.complete"
fi
echo "PoCo ${POCO_VERSION} artifacts in tools/chain/$dest"
