#!/usr/bin/env bash
# A throwaway single-node Slurm cluster (Debian 12: slurm-wlm 22.05 + munge), for tests.
#
#   tests/slurm/cluster.sh up     DIR   start munged, slurmctld and slurmd; everything
#                                       (config, keys, sockets, state, logs, pid files)
#                                       lives under DIR
#   tests/slurm/cluster.sh down   DIR   cancel the jobs, stop the daemons, kill leftovers
#   tests/slurm/cluster.sh status DIR   daemons, node state and queue; exit 0 when up
#   source DIR/env.sh                   then sbatch/squeue/scontrol talk to this cluster
#
# Needs root (SlurmUser=root); no systemd needed. Nothing outside DIR is touched: a
# private munge key and socket, SLURM_CONF pointing into DIR, two free ports picked at
# `up` (a real Slurm on 6817/6818 or a second test cluster is not disturbed), all
# traffic to 127.0.0.1, daemons listening on 127.0.0.1 only when the hostname resolves
# to a loopback address (Debian's /etc/hosts; else on all addresses, with a note).
# Daemons are stopped by their pid files; `down` also kills any Slurm daemon,
# slurmstepd or job process whose environment names this cluster's SLURM_CONF, so a
# failed or interrupted test leaves nothing running. Each `up` starts
# the controller on a fresh, empty StateSaveLocation (a controller restarted over
# state left by a kill -9 refuses or resurrects old jobs). A leftover cluster in DIR
# is brought down first. On failure the daemon logs under DIR/log are printed.
# Tunables: SLURM_TEST_TIMEOUT (seconds to wait for the daemons, default 30).
set -euo pipefail

usage() { echo "usage: $0 up|down|status DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
case "$cmd" in
  up) mkdir -p "$2" ;;
  down|status) [ -d "$2" ] || { echo "cluster.sh: no cluster in $2" >&2; [ "$cmd" = down ]; exit; } ;;
  *) usage ;;
esac
DIR=$(cd "$2" && pwd)
CONF="$DIR/etc/slurm.conf"
MUNGE_SOCK="$DIR/munge-socket/munge.socket.2"
WAIT_S=${SLURM_TEST_TIMEOUT:-30}
export SLURM_CONF="$CONF"
# Our own commands must not be steered elsewhere by the caller's environment.
unset SLURM_CONF_SERVER SLURM_CLUSTERS SLURM_JOB_ID 2>/dev/null || true

say() { echo "cluster.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

# pid_alive FILE: the pid in FILE runs the daemon FILE is named after (pid files
# survive a kill -9; their pid may since belong to someone else).
pid_alive() {
  local pid name
  [ -f "$1" ] || return 1
  pid=$(cat "$1" 2>/dev/null) || return 1
  name=$(basename "$1" .pid)
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] && running "$pid"
}

# running PID: exists and is not a zombie (a container's pid 1 may never reap).
running() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}

# This cluster's Slurm daemons, slurmstepds and job tasks carry our SLURM_CONF in
# their environment (munged too, but it is stopped last, by pid file or socket). Other
# processes that merely have it (this script's callers, the test's polling) are
# neither daemons nor in a job; we never match ourselves or our ancestors.
cluster_procs() {
  local skip=" $$ " p=$$ pid env e
  while [ "$p" -gt 1 ] 2>/dev/null; do
    p=$(awk '/^PPid:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 1)
    skip+="$p "
  done
  for env in /proc/[0-9]*/environ; do
    pid=${env#/proc/}; pid=${pid%/environ}
    case "$skip" in *" $pid "*) continue ;; esac
    e=$( { tr '\0' '\n' <"$env"; } 2>/dev/null ) || continue
    grep -qxF "SLURM_CONF=$CONF" <<<"$e" || continue
    case "$(cat "/proc/$pid/comm" 2>/dev/null)" in
      slurmstepd|slurmd|slurmctld|slurmscriptd) echo "$pid"; continue ;;
    esac
    if grep -q '^SLURM_JOB_ID=' <<<"$e"; then echo "$pid"; fi
  done
}

# stop_pidfile FILE NAME: TERM, wait up to 10 s, then KILL.
stop_pidfile() {
  local f=$1 name=$2 pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f" 2>/dev/null || true)
  if pid_alive "$f"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do running "$pid" || break; sleep 0.05; done
    if running "$pid"; then
      say "$name ($pid) ignored SIGTERM; killing"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
  fi
  rm -f "$f"
}

show_logs() {
  local f
  for f in "$DIR"/log/*.log; do
    [ -f "$f" ] || continue
    echo "---- $f (last 40 lines)" >&2
    tail -n 40 "$f" >&2
  done
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

do_down() {
  local ids pids i pid
  if pid_alive "$DIR/run/slurmctld.pid" && pid_alive "$DIR/munge/munged.pid"; then
    ids=$(timeout 10 squeue -h -o %A 2>/dev/null || true)
    if [ -n "$ids" ]; then
      # shellcheck disable=SC2086
      timeout 10 scancel $ids 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        [ -z "$(timeout 5 squeue -h -o %A 2>/dev/null || true)" ] && break
        sleep 0.2
      done
    fi
  fi
  stop_pidfile "$DIR/run/slurmd.pid" slurmd
  stop_pidfile "$DIR/run/slurmctld.pid" slurmctld
  pids=$(cluster_procs)
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
  fi
  stop_pidfile "$DIR/munge/munged.pid" munged
  # A munged whose pid file is gone: found by its socket argument.
  for pid in /proc/[0-9]*; do
    pid=${pid#/proc/}
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = munged ] || continue
    if grep -qxF -- "--socket=$MUNGE_SOCK" <<<"$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null)"; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  rm -f "$MUNGE_SOCK" "$MUNGE_SOCK.lock"
}

do_status() {
  local ok=0 d
  for d in munge/munged run/slurmctld run/slurmd; do
    if pid_alive "$DIR/$d.pid"; then echo "${d#*/}: running (pid $(cat "$DIR/$d.pid"))"
    else echo "${d#*/}: stopped"; ok=1; fi
  done
  if [ $ok -eq 0 ]; then
    timeout 10 sinfo -h -N -o '%N %T %c' | sed 's/^/node: /' || ok=1
    timeout 10 squeue -h -o '%A %j %T %r' | sed 's/^/job: /' || ok=1
  fi
  return $ok
}

# wait_for DESC CMD...: retries CMD every 0.1 s for WAIT_S seconds.
wait_for() {
  local desc=$1 i; shift
  for ((i = 0; i < WAIT_S * 10; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  say "timed out after ${WAIT_S}s waiting for $desc"
  show_logs
  do_down
  exit 1
}

node_idle() { grep -qx idle <<<"$(timeout 5 sinfo -h -n "$NODE" -o %T)"; }

do_up() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (the test cluster uses SlurmUser=root)"
  local b
  for b in munged slurmctld slurmd sbatch squeue scontrol sinfo scancel; do
    command -v "$b" >/dev/null || die "$b not found: install slurm-wlm and munge (launch/install-deps.sh)"
  done
  if [ -f "$DIR/run/slurmctld.pid" ] || [ -f "$DIR/run/slurmd.pid" ] || [ -f "$DIR/munge/munged.pid" ]; then
    say "bringing down a leftover cluster in $DIR"
    do_down
  fi
  # Unix socket paths are limited to 107 bytes; slurmd and PMIx put theirs under DIR.
  [ ${#DIR} -le 60 ] || die "DIR path too long for Unix sockets (${#DIR} > 60 chars): $DIR"

  NODE=$(uname -n); NODE=${NODE%%.*}
  local cpus ctld_port slurmd_port
  # What slurmd itself detects (nproc would obey OMP_NUM_THREADS), at least 2 so that
  # a 2-rank job fits on any machine (config_overrides lets the config exceed it).
  cpus=$(slurmd -C 2>/dev/null | sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' | head -n1)
  [ -n "$cpus" ] || cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
  [ "$cpus" -ge 2 ] || cpus=2
  ctld_port=$(free_port)
  slurmd_port=$(free_port)
  [ "$ctld_port" != "$slurmd_port" ] || slurmd_port=$(free_port)

  # NoInAddrAny/NoCtldInAddrAny make the daemons and srun bind the first IPv4 address
  # the machine's hostname resolves to instead of 0.0.0.0: loopback-only exactly when
  # that address is a loopback one (as in Debian's /etc/hosts). Where the hostname
  # resolves elsewhere (or not at all) the daemons would listen where nobody talks to
  # them (all traffic goes to 127.0.0.1), so they bind all addresses instead.
  local host_addr comm_params=""
  host_addr=$(python3 -c 'import socket
try: print(socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])
except OSError: pass' 2>/dev/null || true)
  case "$host_addr" in
    127.*) comm_params=NoInAddrAny,NoCtldInAddrAny ;;
    *) say "note: hostname $(uname -n) resolves to '${host_addr:-nothing}', not loopback:" \
         "daemons listen on all addresses (ports $ctld_port, $slurmd_port)" ;;
  esac

  rm -rf "$DIR/state" "$DIR/spool" "$DIR/tmp"
  mkdir -p "$DIR/etc" "$DIR/log" "$DIR/run" "$DIR/state" "$DIR/spool" "$DIR/tmp" \
    "$DIR/munge" "$DIR/munge-socket"
  chmod 0700 "$DIR/munge" "$DIR/state"
  chmod 0755 "$DIR/munge-socket"  # munged insists: clients must reach the socket
  chmod 1777 "$DIR/tmp"

  if [ ! -s "$DIR/munge/munge.key" ]; then
    (umask 077 && head -c 1024 /dev/urandom >"$DIR/munge/munge.key")
  fi
  chmod 0600 "$DIR/munge/munge.key"
  : >"$DIR/log/munged.log"
  chmod 0600 "$DIR/log/munged.log"
  munged --force --socket="$MUNGE_SOCK" --key-file="$DIR/munge/munge.key" \
    --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/log/munged.log" \
    --seed-file="$DIR/munge/munged.seed" --num-threads=2 \
    || { show_logs; die "munged did not start"; }
  wait_for "munged" pid_alive "$DIR/munge/munged.pid"

  # cred_expire also sets how long a requeued job waits before it may start again
  # (default 120 s); keep it short so the requeue test is quick.
  cat >"$CONF" <<EOF
# Generated by tests/slurm/cluster.sh for a throwaway single-node test cluster.
ClusterName=adebert-test
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
${comm_params:+CommunicationParameters=$comm_params}
MailProg=/bin/true
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCK,cred_expire=5
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
TmpFS=$DIR/tmp
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=1,bf_interval=1
ReturnToService=2
SlurmdParameters=config_overrides
MaxJobCount=1000
MinJobAge=300
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=1 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  cat >"$DIR/env.sh" <<EOF
# source me: points the Slurm commands at the test cluster in $DIR
export SLURM_CONF=$CONF
EOF

  : >"$DIR/log/slurmctld.log"
  : >"$DIR/log/slurmd.log"
  # -c: clear any saved state (there is none: fresh StateSaveLocation), -i: ignore
  # errors reading it.
  slurmctld -c -i || { show_logs; do_down; die "slurmctld did not start"; }
  wait_for "slurmctld to answer" timeout 5 scontrol ping
  slurmd -N "$NODE" || { show_logs; do_down; die "slurmd did not start"; }
  wait_for "node $NODE to become idle" node_idle
  say "up: node $NODE ($cpus CPUs), slurmctld 127.0.0.1:$ctld_port, slurmd 127.0.0.1:$slurmd_port; source $DIR/env.sh"
}

case "$cmd" in
  up) do_up ;;
  down) do_down; say "down: $DIR" ;;
  status) do_status ;;
  *) usage ;;
esac
