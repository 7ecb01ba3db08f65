#!/usr/bin/env bash
# Start a one-node Slurm cluster with accounting on this machine, for tests/test_slurm.py.
#
# Needs root and apt (Debian/Ubuntu); no systemd. Installs what is missing (Debian's slurm-wlm, munge,
# slurmdbd, mariadb-server), writes the configuration, then starts munged, MariaDB, slurmdbd (submitit
# polls job states with sacct, which needs accounting), slurmctld and slurmd, and waits until the node
# takes jobs. The PIDs of the daemons it started are written, one "name pid" per line, to
# $LDIFS_SLURM_PIDS (default /run/ldifs-slurm/pids); .ci/slurm_stop.sh stops exactly those. A daemon
# that already runs is left as it is (and not listed, so that stopping leaves it running too).
#
#   LDIFS_SLURM_PARTITION   partition name (default: debug)
#   LDIFS_SLURM_REQUEUE_S   seconds a requeued job waits before it may start again (Slurm's
#                           AuthInfo cred_expire; Slurm's default is 120 s; default here: 5)
set -euo pipefail

PIDS=${LDIFS_SLURM_PIDS:-/run/ldifs-slurm/pids}
PARTITION=${LDIFS_SLURM_PARTITION:-debug}
REQUEUE_S=${LDIFS_SLURM_REQUEUE_S:-5}
CLUSTER=ldifs
LOGS=/var/log/ldifs-slurm
T0=$SECONDS

say() { echo "[slurm_start +$((SECONDS - T0))s] $*"; }
die() { echo "slurm_start: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (it installs packages and runs the Slurm daemons as root); the Slurm tests skip"
command -v apt-get > /dev/null || die "needs apt-get (Debian/Ubuntu packages of Slurm); the Slurm tests skip"

# a daemon counts as running if its PID is alive, not a zombie, and has the daemon's name
running() { [ -n "${2:-}" ] && [ -r "/proc/$2/stat" ] && [ "$(cut -d' ' -f3 "/proc/$2/stat")" != Z ] &&
            [ "$(cat "/proc/$2/comm" 2> /dev/null)" = "$1" ]; }
pid_in() { [ -s "$1" ] && tr -cd '0-9' < "$1" || true; }
until_ok() {  # until_ok SECONDS WHAT COMMAND...: retry COMMAND every 0.2 s, fail with the daemons' logs after SECONDS
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@" > /dev/null 2>&1; do
    if ((SECONDS >= end)); then
      for f in "$LOGS"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 15 "$f"; }; done >&2
      die "$what: not ready after ${limit}s"
    fi
    sleep 0.2
  done
}

# ------------------------------------------------------------------------------------------- packages
need=()
for p in slurm-wlm munge slurmdbd mariadb-server; do
  dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q 'ok installed' || need+=("$p")
done
if ((${#need[@]})); then
  say "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-cache show slurm-wlm > /dev/null 2>&1 || apt-get update -qq > /dev/null
  # the packages' install scripts must not start their services: this script starts them, by PID
  made_policy=0
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1; }
  apt_log=$(mktemp)
  if ! apt-get install -y -qq --no-install-recommends "${need[@]}" > "$apt_log" 2>&1; then
    tail -n 20 "$apt_log" >&2; ((made_policy)) && rm -f /usr/sbin/policy-rc.d; die "apt-get install ${need[*]} failed"
  fi
  ((made_policy)) && rm -f /usr/sbin/policy-rc.d
  rm -f "$apt_log"
  say "installed: $(dpkg-query -W -f='${Package} ${Version}  ' slurm-wlm munge slurmdbd mariadb-server)"
fi

mkdir -p "$(dirname "$PIDS")" "$LOGS" /var/spool/slurmctld /var/spool/slurmd /etc/slurm
# keep the entries of an earlier start whose daemons still run (started by us, so ours to stop)
new="$PIDS.new"; : > "$new"
if [ -s "$PIDS" ]; then
  while read -r name pid; do running "$name" "$pid" && echo "$name $pid" >> "$new"; done < "$PIDS"
fi
started() { echo "$1 $2" >> "$new"; say "started $1 (pid $2)"; }

# ------------------------------------------------------------------------------------------- munge
# one key shared by every daemon and client (all on this machine)
[ -s /etc/munge/munge.key ] || { mkdir -p /etc/munge; head -c 1024 /dev/urandom > /etc/munge/munge.key; }
chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge; chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! running munged "$(pid_in /run/munge/munged.pid)"; then
  rm -f /run/munge/munged.pid
  setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged   # forks into the background, writes its PID file
  until_ok 20 munged test -s /run/munge/munged.pid
  started munged "$(pid_in /run/munge/munged.pid)"
fi
until_ok 20 "munge credentials" sh -c 'munge -n | unmunge'

# ------------------------------------------------------------------------------------------- slurm.conf
host=$(hostname -s)
# this machine as slurmd sees it (CPUs, sockets, cores, threads, memory), under our host name;
# RealMemory a little below the real figure, or slurmd drains the node for having less than it says
hw=$(slurmd -C | head -n 1)
mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<< "$hw")
hw=$(sed -e "s/^NodeName=[^ ]*/NodeName=$host/" -e "s/RealMemory=[0-9]*/RealMemory=$((mem * 9 / 10))/" <<< "$hw")
cat > /etc/slurm/slurm.conf.tmp << EOF
# written by ldifs_nb's .ci/slurm_start.sh: one node, root daemons, no cgroups, no systemd
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# a requeued job may start again after cred_expire seconds
AuthInfo=cred_expire=$REQUEUE_S
# no cgroups here: processes are tracked through their parents, tasks are not pinned
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# look at waiting jobs every 2 s (default 60 s; backfill 30 s): a requeued job starts again ~11 s after its requeue, not ~35 s
SchedulerParameters=sched_interval=2,bf_interval=1
# accounting through slurmdbd: sacct, which submitit asks for job states
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
ReturnToService=2
KillWait=5
MailProg=/bin/true
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
$hw NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
mv /etc/slurm/slurm.conf.tmp /etc/slurm/slurm.conf

# ------------------------------------------------------------------------------------------- MariaDB + slurmdbd
mkdir -p /run/mysqld; chown mysql:mysql /run/mysqld
if ! running mariadbd "$(pid_in /run/mysqld/mysqld.pid)"; then
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql > "$LOGS/mariadb-install.log" 2>&1
  # a local socket only, a small buffer pool: it holds a few job records
  setsid /usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid --skip-networking \
    --innodb-buffer-pool-size=32M >> "$LOGS/mariadbd.log" 2>&1 < /dev/null &
  until_ok 60 MariaDB mariadb-admin ping
  until_ok 10 "MariaDB PID file" test -s /run/mysqld/mysqld.pid
  started mariadbd "$(pid_in /run/mysqld/mysqld.pid)"
fi
# the database password: made once, readable by root only
[ -s /etc/slurm/ldifs-db-pass ] || (umask 077; head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > /etc/slurm/ldifs-db-pass)
db_pass=$(cat /etc/slurm/ldifs-db-pass)
mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$db_pass';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
(umask 077; cat > /etc/slurm/slurmdbd.conf << EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
LogFile=$LOGS/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$db_pass
StorageLoc=slurm_acct_db
EOF
)
if ! running slurmdbd "$(pid_in /run/slurmdbd.pid)"; then
  rm -f /run/slurmdbd.pid
  slurmdbd   # forks into the background
  until_ok 60 slurmdbd sacctmgr -n list cluster
  started slurmdbd "$(pid_in /run/slurmdbd.pid)"
fi
sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" > /dev/null

# ------------------------------------------------------------------------------------------- slurmctld + slurmd
if running slurmctld "$(pid_in /run/slurmctld.pid)"; then
  scontrol reconfigure   # the running controller reads the new slurm.conf
else
  rm -f /run/slurmctld.pid
  slurmctld
  until_ok 60 slurmctld scontrol ping
  started slurmctld "$(pid_in /run/slurmctld.pid)"
fi
if ! running slurmd "$(pid_in /run/slurmd.pid)"; then
  rm -f /run/slurmd.pid
  slurmd
  until_ok 30 slurmd test -s /run/slurmd.pid
  started slurmd "$(pid_in /run/slurmd.pid)"
fi
# a node left down or drained by an earlier run takes jobs again
scontrol update nodename="$host" state=resume > /dev/null 2>&1 || true
until_ok 60 "node $host idle" sh -c "sinfo -h -n '$host' -o %t | grep -Eqx 'idle|mix|alloc'"
mv "$new" "$PIDS"
say "cluster ready: partition $PARTITION, node $host ($(sinfo -h -n "$host" -o '%c CPUs, %m MB')); PIDs in $PIDS: $(tr '\n' ' ' < "$PIDS")"
