#!/usr/bin/env bash
# Checks that qkv installs like a tool and links like a library, from the release build that
# scripts/test.sh made: cmake --install into a temporary prefix; every installed header compiles
# alone; examples/ builds against the prefix with find_package and with pkg-config, and runs
# (train_tiny's loss must fall; generate samples a checkpoint the installed qkv trained). As root
# it then builds the .deb, installs it with apt-get, uses the installed qkv outside the source
# tree (--version, man, completion, train, sample, serve) and removes it again.
#   usage: scripts/check-install.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source=$PWD
build=$source/build/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

step() { echo "check-install: $*"; }
fail() { echo "check-install: FAILED: $*" >&2; exit 1; }

step "cmake --install into a temporary prefix"
cmake --install "$build" --prefix "$prefix" > /dev/null
libdir=$(dirname "$(find "$prefix" -name libqkv.so)")
export PKG_CONFIG_PATH=$libdir/pkgconfig

step "each installed header compiles alone against the prefix"
# shellcheck disable=SC2016  # expanded by the inner shell
(cd "$prefix/include" && find qkv -name '*.h' | sort) |
  xargs -P 2 -I{} sh -c 'echo "#include <{}>" | c++ -x c++ -fsyntax-only $0 - ||
                         { echo "{} does not compile alone" >&2; exit 255; }' \
        "$(pkg-config --cflags qkv)" || fail "an installed header needs one not installed"

step "examples/ with find_package(qkv)"
cmake -S examples -B "$work/examples" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" > /dev/null
cmake --build "$work/examples" > /dev/null
step "examples/ with pkg-config"
c++ examples/train_tiny.cpp -o "$work/train_tiny_pc" $(pkg-config --cflags --libs qkv) \
    -Wl,-rpath,"$libdir"

text=$work/text.txt
for _ in $(seq 400); do echo "the quick brown fox jumps over the lazy dog. "; done > "$text"
falls() {  # train_tiny's output: the last loss well under the first
  awk '/loss/ { if (!first) first = $NF; last = $NF } END { exit !(last < first - 1) }'
}
for program in "$work/examples/train_tiny" "$work/train_tiny_pc"; do
  "$program" | tee "$work/losses" | tail -1
  falls < "$work/losses" || fail "$program: the loss did not fall"
done

cd "$work"  # from here on, outside the source tree
"$prefix/bin/qkv" train "$prefix/share/qkv/configs/tiny.toml" --set data.path="$text" \
    --set train.max_iters=20 --out run --threads 2 2> /dev/null
sample=$("$work/examples/generate" run "the ")
[[ $sample == "the "?* ]] || fail "generate printed '$sample'"

if [[ $(id -u) -ne 0 ]]; then
  step "not root: the .deb is not installed; done"
  exit 0
fi
step "cpack -G DEB"
(cd "$build" && cpack -G DEB > /dev/null)
deb=$(ls "$build"/qkv_*.deb)
step "$(basename "$deb") depends on: $(dpkg-deb -f "$deb" Depends)"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" > /dev/null
trap 'apt-get remove -y -qq qkv > /dev/null; rm -rf "$work"' EXIT
[[ $(command -v qkv) == /usr/bin/qkv ]] || fail "qkv is not /usr/bin/qkv after installing"
qkv --version
man qkv | grep -q "qkv train" || fail "man qkv does not describe qkv train"
# shellcheck disable=SC1091
source /usr/share/bash-completion/completions/qkv
completes() {  # completes WORD... EXPECTED: the last word completed gives EXPECTED among others
  COMP_WORDS=("${@:1:$#-1}")
  COMP_CWORD=$(($# - 2))
  _qkv
  [[ " ${COMPREPLY[*]} " == *" ${!#} "* ]] || fail "completing '${COMP_WORDS[*]}' gave '${COMPREPLY[*]}'"
}
completes qkv sa sample
completes qkv data p prepare
completes qkv sample --pro --prompt
qkv train /usr/share/qkv/configs/tiny.toml --set data.path="$text" --set train.max_iters=20 \
    --out deb_run --threads 2 2> /dev/null
qkv sample deb_run --prompt "the " --max-new-tokens 40 > /dev/null
qkv serve . --port 0 2> serve.log &
server=$!
for _ in $(seq 100); do grep -q "http://" serve.log && break; sleep 0.1; done
url=$(grep -o "http://[^ ]*" serve.log | head -1)
[[ -n $url ]] || fail "qkv serve printed no address: $(cat serve.log)"
port=${url##*:}
port=${port%/}
exec 3<> "/dev/tcp/127.0.0.1/$port"
printf 'GET /api/runs HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n' "$port" >&3
[[ $(cat <&3) == *deb_run* ]] || fail "qkv serve at $url does not list deb_run"
exec 3<&-
kill "$server"
wait "$server" || true
apt-get remove -y -qq qkv > /dev/null
[[ ! -e /usr/bin/qkv ]] || fail "/usr/bin/qkv is still there after removing the package"
step "all good"
