#!/usr/bin/env bash
# qkv against PyTorch (bench/pytorch_ref.py, nanoGPT's model and loop) on the same config, batch,
# OpenBLAS kernel and cores, side by side. PyTorch runs under each of its thread settings and the
# fastest one counts. Every setting runs --repeats times, interleaved so drift on a shared
# machine hits all alike; the figure per setting is the median of the runs' medians.
#
#   bench/compare.sh CORPUS [--big] [--threads N] [--iters N] [--warmup N] [--repeats N] [--rt]
#   e.g. bench/compare.sh ../shared/data/tinyshakespeare.txt
#        bench/compare.sh ../shared/data/tinyshakespeare.txt --big      (few iterations)
# --rt runs each command under SCHED_FIFO (chrt -f 10; needs root or CAP_SYS_NICE), so other
# processes cannot preempt it: quiet-machine figures on a shared machine. The other processes
# stall meanwhile (the kernel still leaves them 5% of each second).
# Needs a Release build with the benchmarks (build/release from the preset, or build/, or
# $BUILD) and Debian's python3-torch.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
# The build with the benchmarks: $BUILD, else the release preset's, else build/.
build=${BUILD:-}
if [[ -z $build ]]; then
  build=$root/build
  [[ -x $root/build/release/bench/bench_train ]] && build=$root/build/release
fi
corpus=${1:?usage: compare.sh CORPUS [--big] [--threads N] [--iters N] [--warmup N] [--repeats N] [--rt]}
shift
config=$root/configs/shakespeare_char.toml
threads=2 iters= warmup=5 repeats=3
big=0 rt=()
while (($#)); do
  case $1 in
    --big) big=1 ;;
    --rt) rt=(chrt -f 10) ;;
    --threads) threads=$2; shift ;;
    --iters) iters=$2; shift ;;
    --warmup) warmup=$2; shift ;;
    --repeats) repeats=$2; shift ;;
    *) echo "compare.sh: unknown argument $1" >&2; exit 1 ;;
  esac
  shift
done
if ((big)); then
  config=$root/configs/shakespeare_char_big.toml
  # ~14 s per PyTorch iteration: a handful is all a comparison can afford.
  iters=${iters:-3} warmup=1
fi
iters=${iters:-30}
[[ -x $build/bench/bench_train ]] || { echo "no $build/bench/bench_train: build with -DQKV_BUILD_BENCH=ON" >&2; exit 1; }

source "$here/openblas_kernel.sh"

# name | command (env settings first)
settings=(
  "qkv --threads $threads|env $build/bench/bench_train $config $corpus --threads $threads --iters $iters --warmup $warmup"
  "torch default intra-op (1), OpenBLAS $threads|env -u OMP_NUM_THREADS OPENBLAS_NUM_THREADS=$threads /usr/bin/python3 $here/pytorch_ref.py $config $corpus --iters $iters --warmup $warmup"
  "torch $threads intra-op, OpenBLAS $threads|env OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads /usr/bin/python3 $here/pytorch_ref.py $config $corpus --iters $iters --warmup $warmup --torch-threads $threads"
  "torch $threads intra-op, OpenBLAS 1|env OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=1 /usr/bin/python3 $here/pytorch_ref.py $config $corpus --iters $iters --warmup $warmup --torch-threads $threads"
)

echo "config $(basename "$config"), $iters timed iterations after $warmup warm-up, $repeats repeats," \
     "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, $(nproc) cores, load average" \
     "$(cut -d' ' -f1-3 /proc/loadavg)${rt:+, under SCHED_FIFO (--rt)}"
declare -A runs rss
for ((r = 1; r <= repeats; ++r)); do
  for s in "${settings[@]}"; do
    name=${s%%|*} cmd=${s#*|}
    line=$("${rt[@]}" $cmd | grep '^RESULT') || { echo "failed: $cmd" >&2; exit 1; }
    ms=$(sed -E 's/.*ms_per_iter=([0-9.]+).*/\1/' <<<"$line")
    mb=$(sed -E 's/.*rss_mb=([0-9.]+).*/\1/' <<<"$line")
    runs[$name]+="$ms "
    rss[$name]=$mb
    printf '  run %d  %-42s %9.2f ms/iter  RSS %7.1f MB\n' "$r" "$name" "$ms" "$mb"
  done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo
best_torch="" best_ms=""
for s in "${settings[@]}"; do
  name=${s%%|*}
  m=$(median <<<"${runs[$name]}")
  printf '%-42s median %9.2f ms/iter  (runs: %s) RSS %.1f MB\n' "$name" "$m" "${runs[$name]% }" "${rss[$name]}"
  if [[ $name == torch* ]] && { [[ -z $best_ms ]] || awk "BEGIN{exit !($m < $best_ms)}"; }; then
    best_ms=$m best_torch=$name
  fi
  [[ $name == qkv* ]] && qkv_ms=$m
done
awk -v q="$qkv_ms" -v t="$best_ms" -v n="$best_torch" 'BEGIN {
  printf "\nqkv / best PyTorch (%s): %.3f of the time per iteration, %.2fx faster\n", n, q / t, t / q }'
