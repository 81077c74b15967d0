#!/usr/bin/env bash
# Builds, on a machine WITH the build dependencies, what bench/gpu/check.sh runs on a
# GPU host that has none of them (no compiler step there), into OUT_DIR:
#
#   OUT_DIR/adebert, bench/bench_*, tests/test_* + CTestTestfile.cmake files
#   OUT_DIR/lib/    the shared libraries the binaries need beyond glibc/libstdc++ and
#                   beyond what the GPU host's CUDA 13 toolkit gives (cuBLAS, NCCL):
#                   utf8proc, cJSON, BLIS (the CPU GEMM; 12 MB against oneDNN's 40 MB),
#                   cmocka, libgomp, and libcudart.so.13 (0.7 MB, the exact runtime
#                   this build was compiled against)
#   OUT_DIR/data/   the ADE corpus and the BERT vocabularies (../shared/data does not
#                   travel with the repository)
#   OUT_DIR/prepared.env  where it was built, so check.sh can rewrite ctest's paths
#
# Configuration: -DADEBERT_MPI=OFF -DADEBERT_HDF5=OFF -DCMAKE_CUDA_ARCHITECTURES=90
# -DCMAKE_BUILD_TYPE=Release -DADEBERT_BLAS=blis; binaries get RUNPATH $ORIGIN/lib and
# $ORIGIN/../lib. The object files stay in OUT_DIR.build (incremental rebuilds);
# OUT_DIR holds only what travels. OUT_DIR should be an ignored folder of the
# repository (build-gpu-carry/ is: /build*/ in .gitignore) and is carried to the GPU host:
#
#   bench/gpu/prepare.sh build-gpu-carry        (here)
#   device run, carry [build-gpu-carry]:  bench/gpu/check.sh --build build-gpu-carry $OUT/gpu
#
# Env: JOBS (default 2), ADEBERT_DATA_DIR (default ../shared/data),
# PREPARE_BUILD_DIR (default OUT_DIR.build), PREPARE_MAX_MB (default 56),
# PREPARE_CMAKE_ARGS (more -D options, word-split).
set -euo pipefail
out="${1:?usage: bench/gpu/prepare.sh OUT_DIR}"
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
bdir="${PREPARE_BUILD_DIR:-$out.build}"
data_src="${ADEBERT_DATA_DIR:-$root/../shared/data}"
max_mb="${PREPARE_MAX_MB:-56}"
say() { echo "prepare: $*" >&2; }

command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] \
  || { say "nvcc not found: the GPU build needs the CUDA toolkit here"; exit 1; }
[ -f "$data_src/ade-corpus-v2/DRUG-AE.rel" ] && [ -f "$data_src/vocab/bert-base-cased-vocab.txt" ] \
  || { say "corpus or vocab missing under $data_src (set ADEBERT_DATA_DIR)"; exit 1; }
case "$out/" in
  "$root"/*) git -C "$root" check-ignore -q "$out" \
      || say "warning: $out is not ignored by git: it would travel as untracked files";;
  *) say "warning: $out is outside the repository: the device tool only carries folders inside it";;
esac

# Only a folder this script made (or an empty one) is emptied: never a build tree.
if [ -n "$(ls -A "$out")" ] && [ ! -f "$out/prepared.env" ]; then
  say "$out holds files that prepare.sh did not write (a build tree?): choose another OUT_DIR"
  exit 1
fi
# A failed prepare must not leave an older build behind to be carried by mistake.
find "$out" -mindepth 1 -maxdepth 1 \( -name lib -o -name data -o -name tests -o -name bench -o -name adebert \
  -o -name CTestTestfile.cmake \) -exec rm -rf {} +
echo "PREPARED_INCOMPLETE=1" >"$out/prepared.env"
mkdir -p "$bdir"
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S "$root" -B "$bdir" "${gen[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DADEBERT_CUDA=ON -DADEBERT_MPI=OFF -DADEBERT_HDF5=OFF \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_CUDA_RUNTIME_LIBRARY=Static -DADEBERT_BLAS=blis \
  -DADEBERT_DATA_DIR="$out/data" \
  '-DCMAKE_BUILD_RPATH=$ORIGIN/lib;$ORIGIN/../lib' ${PREPARE_CMAKE_ARGS:-} >"$bdir/prepare-configure.log" 2>&1 \
  || { tail -30 "$bdir/prepare-configure.log" >&2; say "configure failed (log: $bdir/prepare-configure.log)"; exit 1; }
grep -E '^-- adebert' "$bdir/prepare-configure.log" >&2 || true
cmake --build "$bdir" -j "${JOBS:-2}" >"$bdir/prepare-build.log" 2>&1 \
  || { grep -E -B2 -A8 'error|FAILED' "$bdir/prepare-build.log" | head -60 >&2; say "build failed (log: $bdir/prepare-build.log)"; exit 1; }

# ---- what travels: binaries, ctest files (paths moved from $bdir to $out), libs, data
mkdir -p "$out/lib" "$out/data" "$out/tests" "$out/bench"
cp "$bdir/adebert" "$out/"
find "$bdir/bench" -maxdepth 1 -type f -name 'bench_*' -perm -u+x -exec cp {} "$out/bench/" \;
find "$bdir/tests" -maxdepth 1 -type f -name 'test_*' -perm -u+x -exec cp {} "$out/tests/" \;
(cd "$bdir" && find . -name CTestTestfile.cmake) | while read -r f; do
  mkdir -p "$out/$(dirname "$f")"
  sed "s|$bdir|$out|g" "$bdir/$f" >"$out/$f"
done

# Libraries: everything ldd resolves except glibc, libstdc++/libgcc, zlib, the
# driver, and the big CUDA libraries the GPU host's toolkit (or PyTorch's wheels) has.
skip='^(linux-vdso|ld-linux|libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|libz|libcuda|libcublas|libcublasLt|libnccl)\.so'
for bin in "$out/adebert" "$out"/bench/* "$out"/tests/*; do
  [ -f "$bin" ] && [ -x "$bin" ] || continue
  ldd "$bin" 2>/dev/null | awk '/=> \// { print $1, $3 }' || true
done | sort -u | while read -r name path; do
  if [[ "$name" =~ $skip ]]; then continue; fi
  cp -L "$path" "$out/lib/$name"
done

cp -r "$data_src/ade-corpus-v2" "$data_src/vocab" "$out/data/"
chmod -R u+w "$out/data"
git_rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$root" diff --quiet HEAD 2>/dev/null || git_rev="$git_rev+dirty"
{
  echo "PREPARED_ROOT=$root"
  echo "PREPARED_OUT=$out"
  echo "PREPARED_GIT=$git_rev"
  echo "PREPARED_DATE=$(date -u +%FT%TZ)"
  echo "PREPARED_NVCC=\"$(nvcc --version 2>/dev/null | tail -1)\""
} >"$out/prepared.env"

# ---- report, and refuse what would not travel
missing=$(for bin in "$out/adebert" "$out"/bench/* "$out"/tests/*; do
  [ -x "$bin" ] && LD_LIBRARY_PATH="$out/lib" ldd "$bin" 2>/dev/null | grep 'not found'; done | sort -u || true)
[ -z "$missing" ] || say "unresolved here (expected only for host-provided CUDA libs): $missing"
echo "dynamic CUDA libraries the binaries expect from the GPU host:" >&2
ldd "$out/adebert" | grep -E 'libcu|libnccl' | awk '{print "  " $1}' >&2 || true
du -sh "$out/lib" "$out/data" "$out" >&2
size_mb=$(( $(du -sb "$out" | cut -f1) / 1048576 ))
if [ "$size_mb" -gt "$max_mb" ]; then
  say "$out is $size_mb MiB, over $max_mb MiB: with the repository it would not fit the 64 MiB a device call carries"
  exit 1
fi
say "ok: $out ($size_mb MiB, git $git_rev); carry it and run bench/gpu/check.sh --build <it> LOG_DIR"
