#!/bin/bash
# A one-node Slurm cluster on this machine, for testing `sharelora experiment submit --slurm` for
# real: Debian's slurm-wlm and munge, this host as controller and only compute node, no accounting,
# no cgroups. Run as root. Usage: bash scripts/slurm-local.sh start|stop|status
# Installs the packages when they are missing (apt). Safe to run again: a running cluster is kept.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
host=$(hostname -s)

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "slurm-local.sh: run as root (it installs packages and starts daemons)" >&2
    exit 2
  fi
}

running() { timeout 5 sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; }

start() {
  need_root
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null
  fi
  if running; then
    echo "slurm: already running on $host"
    return
  fi
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge
  pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
  mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
  local mem
  mem=$(awk '/MemTotal/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)
  cat >"$CONF" <<EOF
ClusterName=sharelora-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SwitchType=switch/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
NodeName=$host CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  pgrep -x slurmctld >/dev/null || slurmctld
  pgrep -x slurmd >/dev/null || slurmd
  for _ in $(seq 1 60); do
    if running; then
      echo "slurm: one-node cluster up on $host (partition local)"
      return
    fi
    sleep 0.5
  done
  echo "slurm-local.sh: the cluster did not come up; see /var/log/slurm/" >&2
  tail -5 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
  exit 1
}

stop() {
  need_root
  pkill -x slurmd || true
  pkill -x slurmctld || true
  pkill -x munged || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) running && echo "slurm: up" || { echo "slurm: down"; exit 1; } ;;
  *)
    echo "usage: bash scripts/slurm-local.sh start|stop|status" >&2
    exit 2
    ;;
esac
