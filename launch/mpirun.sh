#!/usr/bin/env bash
# Runs adebert data-parallel on this machine with Open MPI's mpirun, one rank per GPU.
#
#   launch/mpirun.sh train --data DATA --out RUN            # ranks = GPUs (else 1)
#   launch/mpirun.sh -np 2 train --data DATA --out RUN      # CPU: 2 ranks
#   launch/mpirun.sh --dry-run -np 4 version                # print the command only
#
# Options before the adebert subcommand: -np N / -n N (ranks; default: the number of
# GPUs nvidia-smi lists, else 1; env ADEBERT_NP), --dry-run. Everything else goes to
# `adebert` on every rank. Binary: $ADEBERT_BIN, else build/adebert next to this
# script's launch/ folder, else `adebert` on PATH. Extra mpirun options (a hostfile for
# several nodes, MCA settings): ADEBERT_MPIRUN_ARGS.
#
# What it passes to mpirun, and why:
#   --bind-to none        ranks run OpenMP threads; Open MPI would pin each rank to
#                         one core (np <= 2) or one socket otherwise
#   OMP_NUM_THREADS       CPU cores / ranks (at least 1), unless already set, exported
#                         to every rank with -x
#   --oversubscribe       only when there are more ranks than cores (CPU testing)
#   --allow-run-as-root   only when run as root (containers, CI)
# Each rank takes its GPU from its node-local rank (MPI_Comm_split_type), so all GPUs
# stay visible to all ranks; do not set CUDA_VISIBLE_DEVICES per rank.
set -euo pipefail

np="${ADEBERT_NP:-}"
dry=0
while [ $# -gt 0 ]; do
  case "$1" in
    -np|-n|--np)
      [ $# -ge 2 ] || { echo "mpirun.sh: $1 needs a number" >&2; exit 2; }
      np=$2; shift 2 ;;
    -np=*|--np=*) np=${1#*=}; shift ;;
    --dry-run) dry=1; shift ;;
    --) shift; break ;;
    *) break ;;
  esac
done
if [ $# -eq 0 ]; then
  echo "usage: launch/mpirun.sh [-np N] [--dry-run] ADEBERT_SUBCOMMAND [ARGS...]" >&2
  exit 2
fi

if [ -z "$np" ]; then
  gpus=0
  if command -v nvidia-smi >/dev/null 2>&1; then
    gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
  fi
  np=$(( gpus > 0 ? gpus : 1 ))
fi
case "$np" in
  ''|*[!0-9]*|0) echo "mpirun.sh: bad rank count '$np'" >&2; exit 2 ;;
esac

bin="${ADEBERT_BIN:-}"
if [ -z "$bin" ]; then
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  if [ -x "$here/../build/adebert" ]; then bin="$here/../build/adebert"
  else bin=$(command -v adebert || true); fi
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
  echo "mpirun.sh: no adebert binary: build it (cmake --build build) or set ADEBERT_BIN" >&2
  exit 2
fi

# nproc itself obeys OMP_NUM_THREADS; count the CPUs this process may run on.
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( cores / np > 0 ? cores / np : 1 ))}"

args=(-np "$np" --bind-to none -x OMP_NUM_THREADS)
[ "$np" -le "$cores" ] || args+=(--oversubscribe)
[ "$(id -u)" -ne 0 ] || args+=(--allow-run-as-root)
# shellcheck disable=SC2206
[ -z "${ADEBERT_MPIRUN_ARGS:-}" ] || args+=(${ADEBERT_MPIRUN_ARGS})

echo "mpirun.sh: $np rank(s), OMP_NUM_THREADS=$OMP_NUM_THREADS, $bin" >&2
if [ "$dry" -eq 1 ]; then
  printf '%q ' mpirun "${args[@]}" "$bin" "$@"; echo
  exit 0
fi
exec mpirun "${args[@]}" "$bin" "$@"
