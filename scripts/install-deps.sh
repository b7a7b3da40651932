#!/usr/bin/env bash
# install-deps.sh — installs every Debian and npm dependency of s3dbfs.
# Idempotent: packages already present are left alone, npm modules are
# installed into tests/servers/node_modules only when missing.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

debs=(build-essential autoconf automake libtool pkg-config
      libfuse3-dev fuse3 libcurl4-openssl-dev libssl-dev libjson-c-dev
      libinotifytools0-dev kyua atf-sh libatf-dev
      librabbitmq-dev libpq-dev zlib1g-dev
      jq curl bc clang valgrind vim-tiny)

missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# node and npm: the machine image ships them (nodesource); Debian's otherwise
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm  >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm servers used by the tests (pinned versions)
cd "$top/tests/servers"
need_npm=0
for m in s3rver@3.7.1 fauxqs@1.9.2; do
  name=${m%@*}; ver=${m#*@}
  have=$(node -p "try{require('./node_modules/$name/package.json').version}catch(e){''}" 2>/dev/null || true)
  [ "$have" = "$ver" ] || need_npm=1
done
if [ $need_npm = 1 ]; then
  npm install --no-audit --no-fund --silent
fi
echo "install-deps: all dependencies present"
