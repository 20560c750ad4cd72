#!/usr/bin/env bash
# Corpora of any size: for generated corpora of 100 MB, 1 GB and 10 GB (tiny Shakespeare
# repeated), the time and rate of `qkv data prepare` (with sha256sum of the same file beside
# it), then `qkv train configs/shakespeare_char.toml --set train.max_iters=1` from the prepared
# corpus: its wall time and peak RSS, in one process and as 2 MPI ranks on this machine, against
# the same run on tiny Shakespeare itself.
#
#   bench/corpus_scale.sh CORPUS SCRATCH [SIZE_MB...]     (default sizes: 100 1000 10000)
#   e.g. bench/corpus_scale.sh ../shared/data/tinyshakespeare.txt /tmp/qkv-corpora
# SCRATCH needs about twice the largest size free (the text and its 1-byte ids). Files already
# there are reused. Inputs are read once before timing, so they come from the page cache when
# it holds them (the 10 GB one may not fit beside its ids on a 24 GB machine).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
qkv=${QKV:-$root/build/release/qkv}
corpus=${1:?usage: corpus_scale.sh CORPUS SCRATCH [SIZE_MB...]}
scratch=${2:?usage: corpus_scale.sh CORPUS SCRATCH [SIZE_MB...]}
shift 2
sizes=("$@")
((${#sizes[@]})) || sizes=(100 1000 10000)
mkdir -p "$scratch"
config=$root/configs/shakespeare_char.toml

# Seconds and peak RSS (MB) of a command, as "S MB", its output to $scratch/last.log.
measure() {
  /usr/bin/time -f "%e %M" -o "$scratch/time.txt" "$@" > "$scratch/last.log" 2>&1 ||
    { cat "$scratch/last.log" >&2; exit 1; }
  awk '{printf "%.2f %.0f\n", $1, $2 / 1024}' "$scratch/time.txt"
}

train_args() {  # the run of one step from $1 into $2
  echo train "$config" --set "data.path=$1" --set train.max_iters=1 --set train.eval_iters=1 \
    --out "$2" --threads 1
}

mpi_peak() {  # the larger peak RSS of 2 ranks (MB), and the job's wall seconds
  local start end
  start=$(date +%s.%N)
  mpirun --allow-run-as-root --oversubscribe -np 2 /usr/bin/time -f "%M" -a -o "$scratch/mpi_rss.txt" \
    "$qkv" $(train_args "$1" "$2") > "$scratch/last.log" 2>&1 || { cat "$scratch/last.log" >&2; exit 1; }
  end=$(date +%s.%N)
  printf "%.2f %.0f\n" "$(awk "BEGIN {print $end - $start}")" \
    "$(sort -n "$scratch/mpi_rss.txt" | tail -1 | awk '{print $1 / 1024}')"
}

printf "| corpus | prepare s | MB/s | sha256sum MB/s | train 1 step s | peak RSS MB | 2 ranks s | 2 ranks peak RSS MB |\n"
printf "|---|---|---|---|---|---|---|---|\n"
base=$scratch/base-prep
"$qkv" data prepare "$corpus" --out "$base" > /dev/null
rm -rf "$scratch/run"; read -r s rss < <(measure "$qkv" $(train_args "$base" "$scratch/run"))
rm -rf "$scratch/run" "$scratch/mpi_rss.txt"; read -r ms mrss < <(mpi_peak "$base" "$scratch/run")
printf "| tiny Shakespeare (1.1 MB) | | | | %s | %s | %s | %s |\n" "$s" "$rss" "$ms" "$mrss"
for mb in "${sizes[@]}"; do
  text=$scratch/text-$mb.txt prep=$scratch/prep-$mb
  if [[ ! -f $text ]]; then
    while (( $(stat -c %s "$text" 2>/dev/null || echo 0) < mb * 1000000 )); do
      cat "$corpus" >> "$text"
    done
  fi
  cat "$text" > /dev/null
  bytes=$(stat -c %s "$text")
  rm -rf "$prep"
  read -r ps _ < <(measure "$qkv" data prepare "$text" --out "$prep")
  start=$(date +%s.%N); sha256sum "$text" > /dev/null; end=$(date +%s.%N)
  sha_rate=$(awk "BEGIN {print $bytes / 1e6 / ($end - $start)}")
  rm -rf "$scratch/run"; read -r s rss < <(measure "$qkv" $(train_args "$prep" "$scratch/run"))
  rm -rf "$scratch/run" "$scratch/mpi_rss.txt"; read -r ms mrss < <(mpi_peak "$prep" "$scratch/run")
  printf "| %s MB | %s | %.0f | %.0f | %s | %s | %s | %s |\n" "$mb" "$ps" \
    "$(awk "BEGIN {print $bytes / 1e6 / $ps}")" "$sha_rate" "$s" "$rss" "$ms" "$mrss"
done
