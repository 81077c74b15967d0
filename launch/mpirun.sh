#!/usr/bin/env bash
# Runs adebert data-parallel with Open MPI's mpirun, one rank per GPU, on this machine
# or on the nodes of a hostfile.
#
#   launch/mpirun.sh train --data DATA --out RUN            # ranks = visible GPUs (else 1)
#   launch/mpirun.sh -np 2 train --data DATA --out RUN      # CPU: 2 ranks
#   launch/mpirun.sh --hostfile hosts --per-node 8 train --device cuda --out /shared/RUN
#   launch/mpirun.sh --dry-run -np 4 version                # print the command only
#
# Options before the adebert subcommand:
#   -np N | -n N          ranks in all (env ADEBERT_NP). Default: per-node x nodes.
#   --per-node N          ranks per node (default: the GPUs visible here: the entries of
#                         CUDA_VISIBLE_DEVICES when set, else `nvidia-smi -L`, else 1)
#   --hostfile FILE       Open MPI hostfile (one host per line, `slots=` ignored): the
#                         nodes; without it, this machine only
#   --mpi-arg ARG         one extra mpirun argument, passed as one word (repeatable);
#                         ADEBERT_MPIRUN_ARGS (word-split) is still read
#   --oversubscribe       allow more ranks than cores on a node (CPU tests only)
#   --dry-run             print the mpirun command line (shell-quoted) and exit
# Everything else goes to `adebert` on every rank, quoted as given. Binary:
# $ADEBERT_BIN, else build/adebert next to this script's launch/ folder, else `adebert`
# on PATH; with a hostfile it must exist at the same path on every node.
#
# Contract for several nodes: the nodes are alike (same cores, same GPUs as this one:
# --per-node and the thread count are computed HERE, from this machine), reachable by
# Open MPI (ssh, same paths), and --out is on shared storage. Per rank:
#   OMP_NUM_THREADS       cores of a node / ranks per node (at least 1) unless set
#   binding               ranks placed in blocks of OMP_NUM_THREADS cores
#                         (--map-by ppr:N:node:PE=T --bind-to core): neighbouring local
#                         ranks, neighbouring cores (and GPUs, local rank mod GPUs);
#                         --bind-to none when oversubscribed
#   environment           -x for OMP_NUM_THREADS, LD_LIBRARY_PATH, PATH and every
#                         NCCL_*, FI_*, UCX_*, ADEBERT_* variable set here: mpirun does
#                         not forward the environment to remote ranks by itself
#   --allow-run-as-root   only when run as root (containers, CI)
# Each rank takes its GPU from its node-local rank (MPI_Comm_split_type), so all GPUs
# stay visible to all ranks; do not set CUDA_VISIBLE_DEVICES per rank. adebert
# refuses to start when two ranks of a node would share a GPU, and prints each rank's
# CPUs and GPU ("binding:" lines).
# Stopping: SIGTERM or SIGUSR1 to this script (it stays mpirun's parent) becomes a
# SIGUSR1 to mpirun, which forwards it at once: every rank stops at the same step, rank
# 0 saves, exit 75 (--resume continues). A SIGTERM to mpirun itself is different: Open
# MPI 4.1 waits odls_base_sigkill_timeout (1 s), SIGTERMs the ranks, waits as long
# again and SIGKILLs them, which cuts a save slower than that. A larger value
# (--mpi-arg "--mca" ... or OMPI_MCA_odls_base_sigkill_timeout) gives the save time, but
# mpirun then also waits up to twice as long whenever a rank exits non-zero (a stop's
# exit 75 included), so this script leaves it alone.
set -euo pipefail

say() { echo "mpirun.sh: $*" >&2; }
die() { say "$*"; exit 2; }

np="${ADEBERT_NP:-}"
per_node=""
hostfile=""
dry=0
oversub=0
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    -np|-n|--np)
      [ $# -ge 2 ] || die "$1 needs a number"
      np=$2; shift 2 ;;
    -np=*|--np=*) np=${1#*=}; shift ;;
    --per-node) [ $# -ge 2 ] || die "$1 needs a number"; per_node=$2; shift 2 ;;
    --hostfile) [ $# -ge 2 ] || die "$1 needs a file"; hostfile=$2; shift 2 ;;
    --mpi-arg) [ $# -ge 2 ] || die "$1 needs an argument"; extra+=("$2"); shift 2 ;;
    --oversubscribe) oversub=1; shift ;;
    --dry-run) dry=1; shift ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || die "usage: launch/mpirun.sh [-np N] [--per-node N] [--hostfile FILE] [--mpi-arg ARG]... [--oversubscribe] [--dry-run] ADEBERT_SUBCOMMAND [ARGS...]"

# GPUs this process may use: CUDA_VISIBLE_DEVICES wins over what nvidia-smi lists.
gpus=0
if [ -n "${CUDA_VISIBLE_DEVICES+x}" ]; then
  case "$CUDA_VISIBLE_DEVICES" in
    ''|-1|none|NoDevFiles) gpus=0 ;;
    *) gpus=$(tr ',' '\n' <<<"$CUDA_VISIBLE_DEVICES" | grep -c .) ;;
  esac
elif command -v nvidia-smi >/dev/null 2>&1; then
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
fi

nodes=1
if [ -n "$hostfile" ]; then
  [ -r "$hostfile" ] || die "cannot read hostfile $hostfile"
  nodes=$(sed -e 's/#.*//' "$hostfile" | awk 'NF { print $1 }' | sort -u | wc -l)
  [ "$nodes" -ge 1 ] || die "hostfile $hostfile names no host"
fi
if [ -z "$per_node" ]; then
  if [ -n "$np" ] && [ "$nodes" -eq 1 ]; then per_node=$np
  else per_node=$(( gpus > 0 ? gpus : 1 )); fi
fi
case "$per_node" in ''|*[!0-9]*|0) die "bad ranks per node '$per_node'" ;; esac
[ -n "$np" ] || np=$((per_node * nodes))
case "$np" in ''|*[!0-9]*|0) die "bad rank count '$np'" ;; esac
[ "$np" -le $((per_node * nodes)) ] || die "-np $np > $per_node ranks per node x $nodes node(s)"

bin="${ADEBERT_BIN:-}"
if [ -z "$bin" ]; then
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  if [ -x "$here/../build/adebert" ]; then bin="$here/../build/adebert"
  else bin=$(command -v adebert || true); fi
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
  die "no adebert binary: build it (cmake --build build) or set ADEBERT_BIN"
fi

# nproc itself obeys OMP_NUM_THREADS; count the CPUs this process may run on.
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
threads=$(( cores / per_node > 0 ? cores / per_node : 1 ))
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$threads}"

args=(-np "$np")
[ -z "$hostfile" ] || args+=(--hostfile "$hostfile")
if [ "$per_node" -le "$cores" ]; then
  # blocks of PE cores per rank, ranks filled node by node
  args+=(--map-by "ppr:$per_node:node:PE=$threads" --bind-to core)
else
  [ "$oversub" -eq 1 ] || die "$per_node ranks per node but $cores cores here: pass --oversubscribe (CPU tests only) or fewer ranks"
  say "warning: $per_node ranks per node on $cores cores: oversubscribed, no binding"
  args+=(--map-by "ppr:$per_node:node" --bind-to none --oversubscribe)
fi
for v in OMP_NUM_THREADS LD_LIBRARY_PATH PATH; do
  [ -z "${!v+x}" ] || args+=(-x "$v")
done
while IFS= read -r v; do
  args+=(-x "$v")
done < <(compgen -e | grep -E '^(NCCL_|FI_|UCX_|ADEBERT_)' | sort)
[ "$(id -u)" -ne 0 ] || args+=(--allow-run-as-root)
# shellcheck disable=SC2206  # ADEBERT_MPIRUN_ARGS is a list of options, word-split on purpose
[ -z "${ADEBERT_MPIRUN_ARGS:-}" ] || args+=(${ADEBERT_MPIRUN_ARGS})
args+=(${extra[@]+"${extra[@]}"})

say "$np rank(s) on $nodes node(s), $per_node per node, OMP_NUM_THREADS=$OMP_NUM_THREADS, $gpus GPU(s) visible here, $bin"
if [ "$dry" -eq 1 ]; then
  printf '%q ' mpirun "${args[@]}" "$bin" "$@"; echo
  exit 0
fi
# Not exec: this shell turns SIGTERM into the SIGUSR1 that mpirun forwards at once.
child="" stop=0
trap 'stop=1; [ -z "$child" ] || kill -USR1 "$child" 2>/dev/null' TERM USR1
mpirun "${args[@]}" "$bin" "$@" <&0 &
child=$!
[ $stop -eq 0 ] || kill -USR1 "$child" 2>/dev/null   # a stop that came before the launch
rc=0
while :; do
  wait "$child" && rc=0 || rc=$?
  # a wait cut short by a trapped signal returns > 128 while mpirun still runs
  if [ $rc -le 128 ] || ! kill -0 "$child" 2>/dev/null; then break; fi
done
# cut short just as mpirun ended: wait again for its own status
[ $rc -le 128 ] || { wait "$child" && rc=0 || rc=$?; }
exit "$rc"
