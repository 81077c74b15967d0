#!/usr/bin/env bash
# Compile-only check that the CUDA sources still build for the V100 (sm_70), which
# CUDA 13 dropped: CUDA 12.9 headers and ptxas from NVIDIA's pip wheels, clang as the
# CUDA compiler. No GPU, no CUDA 12 toolkit install needed.
#
#   bench/gpu/sm70-compile-check.sh [--arch sm_70] [FILE.cu ...]
#       default files: nn/cuda/*.cu dist/comm_nccl.cu
#
# Why clang and not nvcc: the CUDA 12 wheels (nvidia-cuda-nvcc-cu12, every version)
# hold ptxas and libnvvm only, not nvcc, cicc or cudafe++, and CUDA 13's nvcc refuses
# sm_70. So the device code is compiled by clang (its own CUDA front end) against the
# CUDA 12.9 headers and assembled to sm_70 SASS by CUDA 12.9's ptxas; the host side is
# compiled by clang against the same headers. What it proves: the code, its headers
# (cuda_runtime, cuda_bf16/fp16, cuBLAS(Lt), NCCL of 12.9) and every kernel compile and
# assemble for sm_70 with CUDA 12.9. What it cannot: nvcc-only diagnostics, linking.
#
# Wheels (about 950 MB: cuBLAS is 580 MB, NCCL 320 MB, for their headers) are
# downloaded once with pip into $ADEBERT_CU12_CACHE (default /tmp/adebert-cu12); only
# the headers, ptxas and libdevice (~60 MB) are kept. Needs clang >= 14, pip, network
# for the first run.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cache="${ADEBERT_CU12_CACHE:-/tmp/adebert-cu12}"
arch=sm_70
files=()
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch=$2; shift;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    -*) echo "sm70-compile-check: unknown option $1" >&2; exit 2;;
    *) files+=("$1");;
  esac
  shift
done
if [ ${#files[@]} -eq 0 ]; then
  for f in "$root"/nn/cuda/*.cu "$root"/dist/comm_nccl.cu; do [ -f "$f" ] && files+=("$f"); done
fi
cxx=$(command -v clang++ || command -v clang++-19 || command -v clang++-18 || command -v clang++-17 \
  || command -v clang++-16 || command -v clang++-15 || command -v clang++-14 || true)
[ -n "$cxx" ] || { echo "sm70-compile-check: clang++ not found (apt-get install clang)" >&2; exit 1; }

cuda="$cache/cuda-12.9"
if [ ! -x "$cuda/bin/ptxas" ] || [ ! -f "$cuda/include/nccl.h" ] || [ ! -f "$cuda/include/cublasLt.h" ]; then
  echo "sm70-compile-check: fetching the CUDA 12.9 wheels into $cache (once)" >&2
  rm -rf "$cache/whl" "$cuda.tmp"
  mkdir -p "$cache/whl" "$cuda.tmp"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_27_x86_64 \
    -d "$cache/whl" nvidia-cuda-nvcc-cu12==12.9.86 nvidia-cuda-runtime-cu12==12.9.79 \
    nvidia-cuda-cccl-cu12==12.9.27 nvidia-cublas-cu12==12.9.3.13 nvidia-nccl-cu12==2.27.7
  x="$cache/x"
  rm -rf "$x"; mkdir -p "$x"
  for w in "$cache"/whl/*.whl; do unzip -q -o "$w" 'nvidia/*/include/*' 'nvidia/cuda_nvcc/bin/ptxas' \
    'nvidia/cuda_nvcc/nvvm/libdevice/*' -d "$x" 2>/dev/null || true; done
  mkdir -p "$cuda.tmp/bin" "$cuda.tmp/include" "$cuda.tmp/nvvm/libdevice" "$cuda.tmp/lib64"
  for p in cuda_runtime cuda_nvcc cuda_cccl cublas nccl; do cp -r "$x/nvidia/$p/include/." "$cuda.tmp/include/"; done
  cp "$x/nvidia/cuda_nvcc/bin/ptxas" "$cuda.tmp/bin/"
  chmod +x "$cuda.tmp/bin/ptxas"
  cp "$x/nvidia/cuda_nvcc/nvvm/libdevice/libdevice.10.bc" "$cuda.tmp/nvvm/libdevice/"
  echo '{"cuda": {"name": "CUDA SDK", "version": "12.9.1"}}' >"$cuda.tmp/version.json"
  echo 'CUDA Version 12.9.1' >"$cuda.tmp/version.txt"
  rm -rf "$x" "$cache/whl" "$cuda"
  mv "$cuda.tmp" "$cuda"
fi

# clang 14 knows CUDA up to 11.5: silence the version note; CUDA 12 dropped texture
# references, which clang < 16's CUDA wrapper still declares, so its texture header
# is kept out (the project uses no textures).
flags=(-x cuda --cuda-path="$cuda" --cuda-gpu-arch="$arch" -std=c++20 -O2 -Wall -Wno-unknown-cuda-version
       -D__CLANG_CUDA_TEXTURE_INTRINSICS_H__ -fno-crash-diagnostics -I"$root" -isystem "$cuda/include")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fails=0
echo "sm70-compile-check: $($cxx --version | head -1); CUDA 12.9 headers; $("$cuda/bin/ptxas" --version | tail -1); target $arch"
for f in "${files[@]}"; do
  b=$(basename "$f" .cu)
  if "$cxx" "${flags[@]}" --cuda-device-only -c "$f" -o "$out/$b.cubin" 2>"$out/$b.dev.err" \
     && "$cxx" "${flags[@]}" --cuda-host-only -c "$f" -o "$out/$b.o" 2>"$out/$b.host.err"; then
    kernels=$(readelf -S "$out/$b.cubin" 2>/dev/null | grep -c '\.text\.' || true)
    echo "ok   ${f#"$root"/}: device code assembled for $arch ($kernels kernel sections), host side compiled"
  else
    fails=$((fails + 1))
    echo "FAIL ${f#"$root"/}:"
    cat "$out/$b.dev.err" "$out/$b.host.err" 2>/dev/null | grep -v '^$' | head -30 | sed 's/^/     /'
  fi
done
echo "sm70-compile-check: $(( ${#files[@]} - fails )) of ${#files[@]} files compile for $arch"
[ "$fails" -eq 0 ]
