#!/usr/bin/env bash
# Installs the Debian packages qkv needs to build and test, skipping any already present.
# Idempotent; uses sudo when not root. Usage: scripts/install-deps.sh [--with-torch]
#   --with-torch  also python3-torch, needed only to regenerate test fixtures and for the
#                 PyTorch side of the benchmarks (not for building, testing or training).
set -euo pipefail

packages=(g++ cmake ninja-build pkg-config libopenblas-openmp-dev libdnnl-dev libcli11-dev
          libspdlog-dev libfmt-dev doctest-dev libtomlplusplus-dev nlohmann-json3-dev
          libcpp-httplib-dev fortunes openmpi-bin libopenmpi-dev)
[[ "${1:-}" == "--with-torch" ]] && packages+=(python3-torch python3-numpy)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

sudo=()
[[ $(id -u) -ne 0 ]] && sudo=(sudo)
echo "install-deps: installing ${missing[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
  "${missing[@]}"
