# Sourced by the bench scripts: the OpenBLAS kernel qkv selects for this CPU (src/runtime.cpp),
# exported so that both qkv and PyTorch run on it; a kernel the caller set wins (qkv keeps it too).
# Sets blas_best (the kernel for this CPU's instruction set) and blas_origin (where the kernel in
# force came from), and defines blas_kernel_check, which measures whether a kernel set by the
# caller is slower than blas_best (an environment may preset OPENBLAS_CORETYPE=Haswell on an
# AVX-512 CPU, where SkylakeX runs sgemm ~1.7x faster).
blas_best=
if grep -qw avx512bw /proc/cpuinfo; then blas_best=SkylakeX
elif grep -qw avx2 /proc/cpuinfo; then blas_best=Haswell; fi
if [[ -n ${OPENBLAS_CORETYPE:-} ]]; then
  blas_origin="set by the caller"
else
  blas_origin="chosen for this CPU"
  [[ -n $blas_best ]] && export OPENBLAS_CORETYPE=$blas_best
fi

# blas_sgemm_gflops KERNEL [PREFIX...]: one thread's sgemm GFLOP/s at 512^3 (the median of five
# runs of 0.1 s) in the system OpenBLAS with that kernel, through numpy (python3-torch needs it);
# PREFIX (e.g. chrt -f 10) runs the measurement.
blas_sgemm_gflops() {
  local kernel=$1
  shift
  "$@" env OPENBLAS_CORETYPE="$kernel" OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \
    /usr/bin/python3 -c '
import time
import numpy as np
a = np.ones((512, 512), np.float32)
runs = []
for _ in range(5):
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < 0.1:
        a @ a
        n += 1
    runs.append(2 * 512**3 * n / (time.perf_counter() - t0) * 1e-9)
print(f"{sorted(runs)[2]:.1f}")'
}

# blas_kernel_check [PREFIX...]: when the kernel in force is not blas_best, measures both (three
# interleaved rounds, the best of each kernel's), prints the two figures and warns on stderr when
# the kernel in force is more than 5% slower. Returns 1 then, else 0.
blas_kernel_check() {
  [[ -z $blas_best || -z ${OPENBLAS_CORETYPE:-} || $OPENBLAS_CORETYPE == "$blas_best" ]] && return 0
  local cur=0 best=0 g _
  for _ in 1 2 3; do
    g=$(blas_sgemm_gflops "$OPENBLAS_CORETYPE" "$@") || return 0
    cur=$(awk -v a="$cur" -v b="$g" 'BEGIN { print (b > a ? b : a) }')
    g=$(blas_sgemm_gflops "$blas_best" "$@") || return 0
    best=$(awk -v a="$best" -v b="$g" 'BEGIN { print (b > a ? b : a) }')
  done
  echo "sgemm 512^3 on one thread: $OPENBLAS_CORETYPE $cur GFLOP/s, $blas_best $best GFLOP/s"
  if awk -v c="$cur" -v b="$best" 'BEGIN { exit !(b > 1.05 * c) }'; then
    awk -v k="$OPENBLAS_CORETYPE" -v o="$blas_origin" -v c="$cur" -v b="$best" -v bk="$blas_best" \
      'BEGIN { printf "WARNING: OPENBLAS_CORETYPE=%s (%s) runs sgemm %.2fx slower than %s, the " \
               "kernel this CPU supports; both sides run %s. For the faster kernel unset " \
               "OPENBLAS_CORETYPE or set it to %s.\n", k, o, b / c, bk, k, bk }' >&2
    return 1
  fi
  return 0
}
