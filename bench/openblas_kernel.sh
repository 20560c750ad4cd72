# Sourced by the bench scripts: the OpenBLAS kernel qkv selects for this CPU (src/runtime.cpp),
# exported so that both qkv and PyTorch run on it; a kernel the caller set wins.
if [[ -z ${OPENBLAS_CORETYPE:-} ]]; then
  if grep -qw avx512bw /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
  elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
fi
