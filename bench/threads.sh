#!/usr/bin/env bash
# Is the default thread count (all cores) as fast as the best one for small work? Times, at
# --threads 1, 2, ... up to the cores and at the default, the commands whose work is many small
# steps: exact-match decoding (qkv eval on an encoder-decoder, greedy and beam 2), loss
# evaluation (qkv eval on a decoder), translation (qkv sample --input, beam 4) and sampling (qkv
# sample, 2000 tokens). Each time is the best of 3. Fails (exit 1) when the default is more than
# 10% slower than the best count for any of them. Decoding runs 8 batches, so that it, not the
# start-up, is what is timed. On a quiet machine sample_2000 says SLOW: `qkv sample` defaults to
# one thread, which a busy machine needs (docs/scaling.md).
#
#   bench/threads.sh [--out DIR]
# Trains its own two small runs first (about a minute). Run it on a quiet machine: a build
# alongside makes every multi-thread time meaningless. Needs a Release build (build/release or
# $BUILD).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${BUILD:-$root/build/release}
out=runs/bench_threads
while (($#)); do
  case $1 in
    --out) out=$2; shift ;;
    *) echo "threads.sh: unknown argument $1" >&2; exit 1 ;;
  esac
  shift
done
qkv=$build/qkv
[[ -x $qkv ]] || { echo "no $qkv: build the release preset first" >&2; exit 1; }
mkdir -p "$out"
out=$(realpath "$out")
cores=$(nproc)

# The runs: the dates encoder-decoder (configs/dates_encdec.toml) trained 300 steps, and
# configs/shakespeare_char.toml's decoder shape trained 20 steps on generated text.
if [[ ! -d $out/encdec/checkpoint-300 ]]; then
  "$qkv" data dates --train 4000 --val 200 --out "$out/data" > /dev/null
  "$qkv" train "$root/configs/dates_encdec.toml" --set data.path="$out/data/dates.tsv" \
    --set train.max_iters=300 --set schedule.lr_decay_iters=300 --set train.eval_interval=300 \
    --out "$out/encdec" --threads 1 2> /dev/null
fi
if [[ ! -d $out/decoder/checkpoint-20 ]]; then
  python3 -c 'import random; random.seed(1)
w = "the cat a dog sees likes my friend old king some birds eats bread".split()
print("\n".join(" ".join(random.choice(w) for _ in range(12)) + "." for _ in range(20000)))' \
    > "$out/text.txt"
  "$qkv" train "$root/configs/shakespeare_char.toml" --set data.path="$out/text.txt" \
    --set train.max_iters=20 --set train.eval_interval=20 --set train.eval_iters=2 \
    --out "$out/decoder" --threads "$cores" 2> /dev/null
fi

# Best wall time of 3 runs of "$@", in seconds.
best_of_3() {
  local best=
  for _ in 1 2 3; do
    local t0 t1
    t0=$(date +%s.%N)
    "$@" > /dev/null 2>&1
    t1=$(date +%s.%N)
    best=$(echo "$t1 - $t0" | bc -l | awk -v b="$best" '{ print (b == "" || $1 < b) ? $1 : b }')
  done
  echo "$best"
}

held_out=$out/data/dates_val.tsv
# The commands, by name, as arguments of qkv.
command() {
  case $1 in
    decode_greedy) echo "eval|$out/encdec|--data|$held_out|--batches|8" ;;
    decode_beam2) echo "eval|$out/encdec|--data|$held_out|--batches|8|--beam|2" ;;
    eval_decoder) echo "eval|$out/decoder|--batches|20" ;;
    translate_beam4) echo "sample|$out/encdec|--input|3rd of March, 1999|--beam|4|--num-samples|4" ;;
    sample_2000) echo "sample|$out/decoder|--max-new-tokens|2000|--prompt|the" ;;
  esac
}
failed=0
printf '%-16s' command
for t in $(seq 1 "$cores") default; do printf '%10s' "$t"; done
printf '%10s\n' verdict
for name in decode_greedy decode_beam2 eval_decoder translate_beam4 sample_2000; do
  IFS='|' read -r -a args <<< "$(command "$name")"
  printf '%-16s' "$name"
  best=
  for t in $(seq 1 "$cores"); do
    s=$(best_of_3 "$qkv" "${args[@]}" --threads "$t")
    printf '%10.3f' "$s"
    best=$(awk -v a="$s" -v b="$best" 'BEGIN { print (b == "" || a < b) ? a : b }')
  done
  d=$(best_of_3 "$qkv" "${args[@]}")
  printf '%10.3f' "$d"
  if awk -v d="$d" -v b="$best" 'BEGIN { exit !(d <= 1.10 * b) }'; then
    printf '%10s\n' ok
  else
    printf '%10s\n' SLOW
    failed=1
  fi
done
exit $failed
