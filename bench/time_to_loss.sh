#!/usr/bin/env bash
# Time to a target val loss: each run trains until its val loss (--eval-batches batches, every
# --eval-every steps) first reaches --target, its training time passes --budget-s, or its
# max_iters end. The training time is the sum of the steps' own times (qkv: metrics.jsonl's "ms";
# PyTorch: bench/pytorch_ref.py --to-loss), so evaluations are not counted. Runs one after the
# other, each on all --threads, so only figures from one invocation compare.
#
#   bench/time_to_loss.sh CORPUS RUN... [--target 1.65] [--eval-every 50] [--eval-batches 200]
#                         [--budget-s 2400] [--threads 2] [--out DIR] [--rt] [--kernel NAME|best]
#   RUN is qkv:CONFIG[,key=value...] (qkv train with those --set) or
#          torch:CONFIG[,bf16][,key=value...] (pytorch_ref.py, with CPU autocast bf16 when
#          ",bf16", on the config qkv resolves from CONFIG and those --set: both sides read the
#          same settings)
#   e.g. bench/time_to_loss.sh ../shared/data/tinyshakespeare.txt --rt \
#          torch:configs/shakespeare_char.toml,bf16 qkv:configs/shakespeare_char_fast.toml
# --kernel runs both sides on that OpenBLAS kernel (best: the one for this CPU), as compare.sh's.
# PyTorch runs with its fastest thread setting from bench/compare.sh (torch.set_num_threads =
# --threads; OpenBLAS on as many). Prints one line per run (reached or not, training seconds,
# steps, tokens, last val loss) and writes DIR/<n>-<side>.csv (seconds,val_loss per evaluation)
# for `qkv plot`-style charts. Needs a Release build (build/release or $BUILD) and
# Debian's python3-torch.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${BUILD:-$root/build/release}
usage="usage: time_to_loss.sh CORPUS RUN... [--target L] [--eval-every K] [--eval-batches N]
                        [--budget-s S] [--threads N] [--out DIR] [--rt] [--kernel NAME|best]"
corpus=$(realpath "${1:?$usage}")
shift
target=1.65 every=50 batches=200 budget=2400 threads=2 out=runs/time_to_loss rt=() runs=() kernel=
while (($#)); do
  case $1 in
    --target) target=$2; shift ;;
    --eval-every) every=$2; shift ;;
    --eval-batches) batches=$2; shift ;;
    --budget-s) budget=$2; shift ;;
    --threads) threads=$2; shift ;;
    --out) out=$2; shift ;;
    --rt) rt=(chrt -f 10) ;;
    --kernel) kernel=$2; shift ;;
    qkv:* | torch:*) runs+=("$1") ;;
    *) echo "time_to_loss.sh: unknown argument $1" >&2; echo "$usage" >&2; exit 1 ;;
  esac
  shift
done
((${#runs[@]})) || { echo "$usage" >&2; exit 1; }
[[ -x $build/qkv ]] || { echo "no $build/qkv: build the release preset first" >&2; exit 1; }
source "$here/openblas_kernel.sh"
if [[ -n $kernel ]]; then
  [[ $kernel == best ]] && kernel=${blas_best:?time_to_loss.sh: no known kernel for this CPU}
  export OPENBLAS_CORETYPE=$kernel
fi
mkdir -p "$out"
echo "target val loss $target ($batches batches every $every steps), budget ${budget} s of" \
     "training, $threads threads, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, load average" \
     "$(cut -d' ' -f1-3 /proc/loadavg)${rt:+, under SCHED_FIFO (--rt)}"

# qkv's evaluations from metrics.jsonl, as "iter seconds tokens val_loss" lines, where seconds
# and tokens sum the training steps before that evaluation.
qkv_evals() {
  /usr/bin/python3 - "$1" <<'EOF'
import json, sys
seconds = tokens = 0.0
for line in open(sys.argv[1]):
    j = json.loads(line)
    if "val_loss" in j:
        print(j["iter"], f"{seconds:.3f}", int(tokens), f"{j['val_loss']:.4f}")
    elif "ms" in j:
        seconds += j["ms"] / 1e3
        tokens += j["ms"] / 1e3 * j["tokens_per_s"]
EOF
}

# Trains qkv until an evaluation reaches the target or the budget is spent, then stops it with
# SIGINT (it saves and exits); prints its evaluations.
run_qkv() {
  local config=$1 sets=$2 dir=$3
  local args=(train "$config" --set "data.path=$corpus" --set "train.eval_interval=$every"
              --set "train.eval_iters=$batches" --out "$dir" --threads "$threads")
  local s
  IFS=, read -ra s <<<"$sets"
  for kv in "${s[@]}"; do [[ -n $kv ]] && args+=(--set "$kv"); done
  rm -rf "$dir"
  "${rt[@]}" "$build/qkv" "${args[@]}" 2> "$dir.log" &
  local pid=$!
  while kill -0 "$pid" 2> /dev/null; do
    sleep 0.5
    [[ -f $dir/metrics.jsonl ]] || continue
    if qkv_evals "$dir/metrics.jsonl" |
         awk -v t="$target" -v b="$budget" '$4 <= t || $2 > b { hit = 1 } END { exit !hit }'; then
      kill -INT "$pid" 2> /dev/null || true  # it may have ended at max_iters meanwhile
      break
    fi
  done
  wait "$pid" || true
  qkv_evals "$dir/metrics.jsonl"
}

run_torch() {
  local config=$1 opts=$2 resolved=$3
  local autocast=off args=(train "$config") s
  IFS=, read -ra s <<<"$opts"
  for kv in "${s[@]}"; do
    case $kv in
      bf16) autocast=bf16 ;;
      ?*) args+=(--set "$kv") ;;
    esac
  done
  "$build/qkv" "${args[@]}" --dump-config > "$resolved"
  "${rt[@]}" env OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" /usr/bin/python3 \
    "$here/pytorch_ref.py" "$resolved" "$corpus" --torch-threads "$threads" --autocast "$autocast" \
    --to-loss "$target" --eval-every "$every" --eval-batches "$batches" --budget-s "$budget" |
    sed -nE 's/^TTL iter=(\S+) seconds=(\S+) tokens=(\S+) val_loss=(\S+)/\1 \2 \3 \4/p'
}

n=0
for r in "${runs[@]}"; do
  n=$((n + 1))
  side=${r%%:*} spec=${r#*:}
  config=$(realpath "${spec%%,*}") extra=
  [[ $spec == *,* ]] && extra=${spec#*,}
  if [[ $side == qkv ]]; then
    evals=$(run_qkv "$config" "$extra" "$out/$n-qkv")
  else
    evals=$(run_torch "$config" "$extra" "$out/$n-torch.toml")
  fi
  [[ -n $evals ]] || { echo "run $n ($r): no evaluation" >&2; exit 1; }
  awk '{ print $2 "," $4 }' <<<"$evals" | sed '1i seconds,val_loss' > "$out/$n-$side.csv"
  awk -v t="$target" -v name="$r" '
    !done { last = $0; if ($4 <= t) done = 1 }
    END {
      split(last, f, " ")
      printf "%-60s %s  %8.1f s  %6d steps  %10d tokens  val %.4f\n", name,
             done ? "reached" : "NOT reached", f[2], f[1], f[3], f[4]
    }' <<<"$evals"
done
