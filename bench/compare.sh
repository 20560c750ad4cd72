#!/usr/bin/env bash
# qkv against PyTorch (bench/pytorch_ref.py, nanoGPT's model and loop) on the same config, batch,
# OpenBLAS kernel and cores, side by side. PyTorch runs under each of its settings (thread
# settings in fp32, and with CPU autocast bf16 where the CPU has bf16 instructions) and the
# fastest one counts. Every setting runs --repeats times, interleaved so drift on a shared
# machine hits all alike (its speed can shift by a third within minutes): the figure per setting
# is the median of the runs' medians, and only figures from one such run compare.
#
#   bench/compare.sh CORPUS [--big] [--threads N] [--iters N] [--warmup N] [--repeats N] [--rt]
#                    [--kernel NAME|best] [--no-autocast] [--against BUILD] [--qkv-only]
#   e.g. bench/compare.sh ../shared/data/tinyshakespeare.txt --rt
#        bench/compare.sh ../shared/data/tinyshakespeare.txt --big --rt     (few iterations)
# --rt runs each command under SCHED_FIFO (chrt -f 10; needs root or CAP_SYS_NICE), so other
# processes cannot preempt it: quiet-machine figures on a shared machine. The other processes
# stall meanwhile (the kernel still leaves them 5% of each second). Without it, PyTorch's
# 2-thread settings lose several times their time to any other busy process.
# The OpenBLAS kernel is qkv's (bench/openblas_kernel.sh): OPENBLAS_CORETYPE when set, else the
# one for this CPU; both sides print the kernel they loaded. A preset kernel slower than the
# CPU's (measured) gets a warning; --kernel NAME runs both sides on NAME, --kernel best on the
# CPU's. --no-autocast leaves out the autocast settings. --against BUILD adds another build's
# bench_train (an older commit's, say) to the same interleaved rounds and prints this build's time
# over it; --qkv-only leaves PyTorch out (build against build).
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
usage="usage: compare.sh CORPUS [--big] [--threads N] [--iters N] [--warmup N] [--repeats N] [--rt]
                  [--kernel NAME|best] [--no-autocast] [--against BUILD] [--qkv-only]"
corpus=${1:?$usage}
shift
config=$root/configs/shakespeare_char.toml
threads=2 iters= warmup=5 repeats=3
big=0 rt=() kernel= autocast=1 against= torch=1
while (($#)); do
  case $1 in
    --big) big=1 ;;
    --rt) rt=(chrt -f 10) ;;
    --kernel) kernel=$2; shift ;;
    --no-autocast) autocast=0 ;;
    --against) against=$2; shift ;;
    --qkv-only) torch=0 autocast=0 ;;
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
  # 4-15 s per PyTorch iteration (fp32 on a preset Haswell kernel the slowest): a handful is
  # all a comparison can afford.
  iters=${iters:-3} warmup=1
fi
iters=${iters:-30}
for b in "$build" ${against:+"$against"}; do
  [[ -x $b/bench/bench_train ]] || { echo "no $b/bench/bench_train: build with -DQKV_BUILD_BENCH=ON" >&2; exit 1; }
done

source "$here/openblas_kernel.sh"
if [[ -n $kernel ]]; then
  [[ $kernel == best ]] && kernel=${blas_best:?compare.sh: no known kernel for this CPU}
  export OPENBLAS_CORETYPE=$kernel
  blas_origin="set with --kernel"
fi

# name | command (env settings first)
ref="/usr/bin/python3 $here/pytorch_ref.py $config $corpus --iters $iters --warmup $warmup"
args="$config $corpus --threads $threads --iters $iters --warmup $warmup"
qkv="$build/bench/bench_train $args"
settings=("qkv --threads $threads|env $qkv")
if [[ -n $against ]]; then
  settings+=("qkv --threads $threads, $against|env $against/bench/bench_train $args")
fi
if ((torch)); then
  settings+=(
    "torch default intra-op (1), OpenBLAS $threads|env -u OMP_NUM_THREADS OPENBLAS_NUM_THREADS=$threads $ref"
    "torch $threads intra-op, OpenBLAS $threads|env OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads $ref --torch-threads $threads"
    "torch $threads intra-op, OpenBLAS 1|env OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=1 $ref --torch-threads $threads"
  )
fi
# qkv in fp32 too where its default (train.precision = auto) is bf16, for the fp32 figures.
if ((torch)) && grep -qw avx512_bf16 /proc/cpuinfo; then
  settings+=("qkv --threads $threads, train.precision fp32|env $qkv --set train.precision=fp32")
fi
# CPU autocast bf16 (nanoGPT's ctx on a CPU): its matmuls run in oneDNN on torch's intra-op
# threads, not in OpenBLAS, so the two intra-op settings only (OpenBLAS's threads made no
# difference). Left out on CPUs without native bf16 (avx512_bf16, AMX), where it is emulated.
if ((autocast)) && grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo; then
  settings+=(
    "torch default intra-op (1), autocast bf16|env -u OMP_NUM_THREADS OPENBLAS_NUM_THREADS=$threads $ref --autocast bf16"
    "torch $threads intra-op, autocast bf16|env OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads $ref --torch-threads $threads --autocast bf16"
  )
elif ((autocast)); then
  echo "no native bf16 on this CPU (avx512_bf16, amx_bf16): PyTorch runs without autocast"
fi

echo "config $(basename "$config"), $iters timed iterations after $warmup warm-up, $repeats repeats," \
     "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} ($blas_origin), $(nproc) cores, load average" \
     "$(cut -d' ' -f1-3 /proc/loadavg)${rt:+, under SCHED_FIFO (--rt)}"
blas_kernel_check "${rt[@]}" || true
declare -A runs rss kernels
qkv_precision=
for ((r = 1; r <= repeats; ++r)); do
  for s in "${settings[@]}"; do
    name=${s%%|*} cmd=${s#*|}
    out=$("${rt[@]}" $cmd) || { echo "failed: $cmd" >&2; exit 1; }
    line=$(grep '^RESULT' <<<"$out") || { echo "no RESULT from: $cmd" >&2; exit 1; }
    ms=$(sed -E 's/.*ms_per_iter=([0-9.]+).*/\1/' <<<"$line")
    mb=$(sed -E 's/.*rss_mb=([0-9.]+).*/\1/' <<<"$line")
    # The kernel the process loaded: bench_train's "OpenBLAS kernel X", pytorch_ref.py's blas=X.
    k=$(sed -nE 's/^OpenBLAS kernel ([^ ]+).*/\1/p; s/^RESULT .*blas=([^ ]+).*/\1/p' <<<"$out" | head -1)
    runs[$name]+="$ms "
    rss[$name]=$mb
    # qkv's train.precision (auto: bf16 where the CPU has it), as bench_train reports it.
    if [[ $name == "qkv --threads $threads" && $line == *precision=* ]]; then
      qkv_precision=$(sed -E 's/.*precision=([^ ]+).*/\1/' <<<"$line")
    fi
    kernels[${k:-unknown}]=1
    printf '  run %d  %-54s %9.2f ms/iter  RSS %7.1f MB\n' "$r" "$name" "$ms" "$mb"
  done
done
if ((${#kernels[@]} == 1)); then
  echo "OpenBLAS kernel loaded by every run: ${!kernels[*]}"
else
  echo "WARNING: the runs loaded different OpenBLAS kernels: ${!kernels[*]}" >&2
fi

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo
best_torch="" best_ms=""
for s in "${settings[@]}"; do
  name=${s%%|*}
  m=$(median <<<"${runs[$name]}")
  printf '%-54s median %9.2f ms/iter  (runs: %s) RSS %.1f MB\n' "$name" "$m" "${runs[$name]% }" "${rss[$name]}"
  if [[ $name == torch* ]] && { [[ -z $best_ms ]] || awk "BEGIN{exit !($m < $best_ms)}"; }; then
    best_ms=$m best_torch=$name
  fi
  [[ $name == "qkv --threads $threads" ]] && qkv_ms=$m
  [[ $name == "qkv --threads $threads, $against" ]] && against_ms=$m
done
if [[ -n $against ]]; then
  awk -v q="$qkv_ms" -v a="$against_ms" -v b="$against" 'BEGIN {
    printf "\nthis build / %s: %.3f of the time per iteration\n", b, q / a }'
fi
((torch)) || exit 0
awk -v q="$qkv_ms" -v t="$best_ms" -v n="$best_torch" -v p="$qkv_precision" 'BEGIN {
  printf "\nbest PyTorch setting: %s, %.2f ms/iter\n", n, t
  if (p != "") printf "qkv ran at precision %s\n", p
  printf "qkv / best PyTorch: %.3f of the time per iteration, %.2fx %s\n", q / t,
         q < t ? t / q : q / t, q < t ? "faster" : "slower" }'
