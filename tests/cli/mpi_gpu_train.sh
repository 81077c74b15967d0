#!/usr/bin/env bash
# Several GPUs under mpirun (ctest -L multigpu). Skipped (exit 77) unless this build
# has CUDA and MPI and the host shows at least 2 GPUs. With them:
#  - the NCCL self-test passes on 2 ranks (bench_nccl: fp32 and bf16 wires);
#  - 2 ranks on 2 GPUs with the same global batch follow 1 GPU: losses within 1e-3
#    relative per step with fp32 sums on the wire (--reduce-precision fp32) and within
#    2% with the default bf16 wire; the replica checksum holds every epoch (else the
#    run aborts);
#  - SIGUSR1 + --resume on 2 GPUs finishes with the uninterrupted run's parameters
#    bit for bit (fp32 wire).
source "$(dirname "$0")/lib.bash"
require_corpus
v=$("$BIN" version 2>&1)
n=$(sed -n 's/.*CUDA *built in; \([0-9]*\) x .*/\1/p' <<<"$v")
if ! grep -q "MPI (" <<<"$v" || [ "${n:-0}" -lt 2 ] || ! command -v mpirun >/dev/null; then
  echo "SKIPPED: needs an MPI + CUDA build, mpirun and 2 GPUs (this host: ${n:-0} GPU(s))"
  exit 77
fi
require_mpi
mpi() { timeout 600 mpirun "${root_flags[@]}" --oversubscribe --bind-to none -np "$@"; }
bench_nccl="$(dirname "$BIN")/bench/bench_nccl"
if [ -x "$bench_nccl" ]; then
  mpi 2 "$bench_nccl" >"$TMP/nccl.log" 2>&1 && pass "NCCL self-test on 2 ranks: $(tail -1 "$TMP/nccl.log")" \
    || fail "NCCL self-test: $(tail -3 "$TMP/nccl.log")"
fi
args=(train --data "$CORPUS" --model tiny --vocab "$CASED_VOCAB" --cased --epochs 2 --limit 1280 --batch-size 32
      --lr 1e-3 --quiet --device cuda --precision fp32)
"$BIN" "${args[@]}" --save-every none --out "$TMP/one" >"$TMP/one.log" 2>&1 || fail "1 GPU: $(tail -2 "$TMP/one.log")"
train_losses "$TMP/one" >"$TMP/one.l"
for wire in fp32 bf16; do
  tol=1e-3; [ $wire = bf16 ] && tol=0.02
  mpi 2 "$BIN" "${args[@]}" --save-every none --reduce-precision $wire --out "$TMP/two_$wire" >"$TMP/two_$wire.log" 2>&1 \
    || fail "2 GPUs ($wire wire): $(tail -2 "$TMP/two_$wire.log")"
  train_losses "$TMP/two_$wire" >"$TMP/two_$wire.l"
  w=$(losses_close "$TMP/one.l" "$TMP/two_$wire.l" $tol) && pass "2 GPUs, $wire sums: follows 1 GPU (worst $w <= $tol)" \
    || fail "2 GPUs, $wire sums vs 1 GPU: worst $w"
done
big=("${args[@]}" --reduce-precision fp32 --epochs 4)
mpi 2 "$BIN" "${big[@]}" --out "$TMP/u" --dump-params "$TMP/u.bin" >/dev/null 2>&1 || fail "uninterrupted 2-GPU run"
mpirun_usr1 2 "$TMP/s" 20 600 "$BIN" "${big[@]}"
rc=$?
[ $rc -eq 75 ] && pass "SIGUSR1 on 2 GPUs: exit 75" || fail "SIGUSR1 on 2 GPUs: exit $rc"
mpi 2 "$BIN" "${big[@]}" --out "$TMP/s" --resume --dump-params "$TMP/s.bin" >/dev/null 2>&1 || fail "resume on 2 GPUs"
cmp -s "$TMP/u.bin" "$TMP/s.bin" && pass "signal + resume on 2 GPUs: bit-identical" || fail "signal + resume on 2 GPUs differs"
finish
