#!/usr/bin/env bash
# Does qkv learn what nanoGPT learns? Trains configs/shakespeare_char.toml (nanoGPT's CPU "baby"
# config; --config picks another) with qkv and with bench/pytorch_ref.py (nanoGPT's model and
# loop in PyTorch) for each seed, one thread each, the two side by side on the two cores, and
# prints val loss at the last iteration: the config's own estimate (eval_iters batches; 20 in the
# baby config) and a 200-batch one, then mean and spread per side.
#
#   bench/quality.sh CORPUS [--seeds "1337 1 2 3 4"] [--out DIR] [--precision auto|fp32|bf16]
#                    [--torch-autocast bf16] [--config FILE] [--set KEY=VALUE]...
#   e.g. bench/quality.sh ../shared/data/tinyshakespeare.txt
#        bench/quality.sh ../shared/data/tinyshakespeare.txt --set optim.kind=muon
#        bench/quality.sh CORPUS --config configs/shakespeare_char_fast.toml
# --set changes the config on both sides: PyTorch reads the config qkv resolves with those --set
# (qkv train --dump-config), so a recipe option (docs/config.md) is compared like for like.
# --precision sets qkv's train.precision and eval --precision (default auto: bf16 where the CPU
# has it); --torch-autocast bf16 trains the PyTorch side under CPU autocast bf16
# (pytorch_ref.py --autocast).
# A seed draws different batches and initial weights on the two sides (different generators):
# compare the distributions, not seed by seed. Needs a Release build (build/release or $BUILD)
# and Debian's python3-torch. About 4 minutes per seed on a quiet 2-core machine.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${BUILD:-$root/build/release}
corpus=${1:?usage: quality.sh CORPUS [--seeds "S1 S2 ..."] [--out DIR] [--precision P] [--torch-autocast bf16]}
corpus=$(realpath "$corpus")
shift
seeds="1337 1 2 3 4" out=runs/quality autocast=off precision=auto sets=()
base_config=$root/configs/shakespeare_char.toml
while (($#)); do
  case $1 in
    --set) sets+=(--set "$2"); shift ;;
    --config) base_config=$2; shift ;;
    --seeds) seeds=$2; shift ;;
    --out) out=$2; shift ;;
    --torch-autocast) autocast=$2; shift ;;
    --precision) precision=$2; shift ;;
    *) echo "quality.sh: unknown argument $1" >&2; exit 1 ;;
  esac
  shift
done
[[ -x $build/qkv ]] || { echo "no $build/qkv: build the release preset first" >&2; exit 1; }
source "$here/openblas_kernel.sh"
blas_kernel_check || true
mkdir -p "$out"
config=$out/config.toml
"$build/qkv" train "$base_config" "${sets[@]}" --dump-config > "$config"
n=$(sed -nE 's/^eval_iters = ([0-9]+).*/\1/p' "$config")  # the config's own estimate's batches

# seed -> "val_n val200" per side
declare -A qkv torch
for seed in $seeds; do
  run=$out/qkv-seed$seed
  rm -rf "$run"
  (
    "$build/qkv" train "$config" --set "data.path=$corpus" --set "train.seed=$seed" --out "$run" \
      --set "train.precision=$precision" --threads 1 2> "$run.log"
    "$build/qkv" eval "$run" --batches 200 --threads 1 --precision "$precision" > "$run.eval" \
      2>> "$run.log"
  ) &
  env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 /usr/bin/python3 "$here/pytorch_ref.py" "$config" \
    "$corpus" --train --seed "$seed" --torch-threads 1 --autocast "$autocast" \
    > "$out/torch-seed$seed.log"
  wait
  last=$(grep '"val_loss"' "$run/metrics.jsonl" | tail -1)
  qn=$(sed -E 's/.*"val_loss":([0-9.eE+-]+).*/\1/' <<<"$last")
  q200=$(awk '$1 == "val" {print $3}' "$run.eval")
  # pytorch_ref.py's last two EVAL lines: the config's estimate at max_iters, then 200 batches.
  evals=$(grep '^EVAL' "$out/torch-seed$seed.log" | sed -E 's/.*val_loss=([0-9.]+).*/\1/' | tail -2)
  tn=$(head -1 <<<"$evals") t200=$(tail -1 <<<"$evals")
  qkv[$seed]="$qn $q200" torch[$seed]="$tn $t200"
  printf 'seed %-6s qkv val %.4f (%d batches) %.4f (200)   PyTorch val %.4f (%d) %.4f (200)\n' \
    "$seed" "$qn" "$n" "$q200" "$tn" "$n" "$t200"
done

summary() {  # name, then "val_n val200" pairs
  local name=$1; shift
  printf '%s\n' "$@" | awk -v name="$name" -v n="$n" '
    { a[NR] = $1; b[NR] = $2; sa += $1; sb += $2 }
    END {
      ma = sa / NR; mb = sb / NR
      for (i = 1; i <= NR; ++i) { va += (a[i] - ma) ^ 2; vb += (b[i] - mb) ^ 2 }
      d = NR > 1 ? NR - 1 : 1
      printf "%-8s mean val %.4f (%d batches, sd %.4f)  %.4f (200 batches, sd %.4f)  over %d seeds\n",
             name, ma, n, sqrt(va / d), mb, sqrt(vb / d), NR }'
}
echo
summary qkv "${qkv[@]}"
summary PyTorch "${torch[@]}"
