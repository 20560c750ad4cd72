#!/usr/bin/env bash
# The quick start: install what is missing, build, get the offline default corpus (Debian's
# fortunes), train configs/quickstart.toml, then sample from the trained model.
# Running it again continues the run if it was interrupted, then samples.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake --preset release > /dev/null
cmake --build --preset release --target qkv
[[ -f data/corpora/fortunes.txt ]] || data/get_default_corpus.sh

run=runs/quickstart
if [[ -f $run/latest ]]; then
  build/release/qkv train --resume "$run"
else
  build/release/qkv train configs/quickstart.toml
fi
echo
build/release/qkv sample "$run" --prompt "The " --max-new-tokens 400 --seed 1
