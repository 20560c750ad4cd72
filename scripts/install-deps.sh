#!/usr/bin/env bash
# Installs the Debian packages qkv needs to build and test, skipping any already present.
# Idempotent; uses sudo when not root. Usage: scripts/install-deps.sh [--with-torch] [--with-browser]
#   --with-torch    also python3-torch, needed only to regenerate test fixtures and for the
#                   PyTorch side of the benchmarks (not for building, testing or training).
#   --with-browser  also chromium, for the test that opens qkv serve's page in a headless
#                   browser (scripts/test.sh asks for it; without it that test is skipped).
set -euo pipefail

packages=(g++ cmake ninja-build pkg-config libopenblas-openmp-dev libdnnl-dev libcli11-dev
          libspdlog-dev libfmt-dev doctest-dev libtomlplusplus-dev nlohmann-json3-dev
          libcpp-httplib-dev fortunes openmpi-bin libopenmpi-dev libssl-dev libzstd-dev
          libxxhash-dev help2man dpkg-dev)
for option in "$@"; do
  case "$option" in
    --with-torch) packages+=(python3-torch python3-numpy) ;;
    --with-browser) packages+=(chromium) ;;
    *) echo "install-deps: unknown option '$option'; see the usage at the top of $0" >&2; exit 1 ;;
  esac
done

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
