#!/usr/bin/env bash
# Stop the Slurm daemons that .ci/slurm_start.sh started: the PIDs listed in $LDIFS_SLURM_PIDS
# (default /run/ldifs-slurm/pids), each only if that PID still runs under the daemon's name.
# Jobs still in the queue are cancelled first, so that no job step outlives slurmd.
set -uo pipefail
PIDS=${LDIFS_SLURM_PIDS:-/run/ldifs-slurm/pids}
[ -s "$PIDS" ] || { echo "slurm_stop: no $PIDS: nothing started, nothing to stop"; exit 0; }

running() { [ -n "${2:-}" ] && [ -r "/proc/$2/stat" ] && [ "$(cut -d' ' -f3 "/proc/$2/stat")" != Z ] &&
            [ "$(cat "/proc/$2/comm" 2> /dev/null)" = "$1" ]; }
pid_of() { awk -v n="$1" '$1 == n {print $2}' "$PIDS"; }

if running slurmctld "$(pid_of slurmctld)"; then
  left=$(timeout 10 squeue -h -o %A 2> /dev/null | sort -u | tr '\n' ' ')
  if [ -n "${left// /}" ]; then
    echo "slurm_stop: cancelling jobs $left"
    timeout 10 scancel $left || true
    for _ in $(seq 50); do [ -z "$(timeout 5 squeue -h -o %A 2> /dev/null)" ] && break; sleep 0.2; done
  fi
fi

rc=0
for name in slurmd slurmctld slurmdbd mariadbd munged; do   # clients before servers
  pid=$(pid_of "$name")
  [ -n "$pid" ] || continue
  running "$name" "$pid" || { echo "slurm_stop: $name ($pid) no longer runs"; continue; }
  kill -TERM "$pid"
  for _ in $(seq 150); do running "$name" "$pid" || break; sleep 0.2; done
  if running "$name" "$pid"; then
    echo "slurm_stop: $name ($pid) still runs 30 s after SIGTERM: SIGKILL" >&2; kill -KILL "$pid"; rc=1
  else
    echo "slurm_stop: stopped $name ($pid)"
  fi
done
rm -f "$PIDS"
exit $rc
