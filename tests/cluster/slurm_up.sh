#!/usr/bin/env bash
# Bring up a throw-away single-node SLURM cluster (with slurmdbd accounting) on
# this machine.  Debian 12, run as root, no systemd needed: every daemon is
# started directly.  Safe to run again: packages are installed only when
# missing, daemons that are already running are left alone, and the script
# returns as soon as the node is idle.
#
#   config : /etc/slurm/{slurm.conf,slurmdbd.conf,gres.conf}
#   state  : /var/lib/slurm/{slurmctld,slurmd}, /var/lib/mysql (accounting DB)
#   logs   : /var/log/slurm/*.log
#   pids   : /run/slurm/*.pid, /run/munge/munged.pid, /run/mysqld/mysqld.pid
#
# Environment (all optional):
#   SLURM_TEST_CLUSTER    cluster name            (default: nmrnn)
#   SLURM_TEST_PARTITION  partition name          (default: debug)
#   SLURM_TEST_ACCOUNT    account created for root (default: nmrnn)
#   SLURM_TEST_WAIT       seconds to wait for the node to become idle (default: 90)
#   SLURM_TEST_MIN_JOB_AGE MinJobAge in seconds (default: 300, see below)
#   SLURM_TEST_PROCTRACK  ProctrackType (default: proctrack/pgid)
#   SLURM_TEST_FAKE_GPUS  N>0: advertise N fake GPUs (gres gpu, File=/dev/null)
#                         so that profiles/slurm-gpu submissions schedule
#
# Tear down with tests/cluster/slurm_down.sh.
set -euo pipefail

t_start=$(date +%s.%N)

CLUSTER=${SLURM_TEST_CLUSTER:-nmrnn}
PARTITION=${SLURM_TEST_PARTITION:-debug}
ACCOUNT=${SLURM_TEST_ACCOUNT:-nmrnn}
WAIT=${SLURM_TEST_WAIT:-90}
MIN_JOB_AGE=${SLURM_TEST_MIN_JOB_AGE:-300}
FAKE_GPUS=${SLURM_TEST_FAKE_GPUS:-0}
PROCTRACK=${SLURM_TEST_PROCTRACK:-proctrack/pgid}
DB_PASS=${SLURM_TEST_DB_PASS:-slurmdb-throwaway}

ETC=/etc/slurm
RUN=/run/slurm
LOG=/var/log/slurm
STATE=/var/lib/slurm

log() { printf '[slurm_up] %s\n' "$*" >&2; }
die() { printf '[slurm_up] ERROR: %s\n' "$*" >&2; exit 1; }
# every call into the cluster is bounded: a wedged daemon must not hang us
t() { local secs=$1; shift; timeout -k 10 "$secs" "$@"; }

pid_alive() { # pidfile
    [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

wait_for() { # secs description command...
    local secs=$1 what=$2; shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            die "timed out after ${secs}s waiting for ${what} (logs: ${LOG}/)"
        fi
        sleep 0.5
    done
}

[[ $(id -u) -eq 0 ]] || die "must run as root"
[[ -f /etc/debian_version ]] || die "only Debian is supported (no /etc/debian_version)"

# --------------------------------------------------------------------------
# packages
# --------------------------------------------------------------------------
need=()
command -v munged >/dev/null || need+=(munge)
command -v slurmctld >/dev/null || need+=(slurmctld)
command -v slurmd >/dev/null || need+=(slurmd)
command -v sbatch >/dev/null || need+=(slurm-client)
command -v slurmdbd >/dev/null || need+=(slurmdbd)
command -v mariadbd >/dev/null || need+=(mariadb-server)
if ((${#need[@]})); then
    log "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # policy-rc.d keeps the maintainer scripts from trying to start services
    t 300 apt-get update -qq
    t 600 apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

mkdir -p "$ETC" "$RUN" "$LOG" "$STATE/slurmctld" "$STATE/slurmd" \
    /run/munge /run/mysqld /var/log/munge /var/lib/munge
chown slurm:slurm "$RUN" "$LOG" "$STATE/slurmctld"
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chown mysql:mysql /run/mysqld

# --------------------------------------------------------------------------
# munge
# --------------------------------------------------------------------------
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating munge key"
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile /etc/munge/munge.key
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
if ! pid_alive /run/munge/munged.pid; then
    log "starting munged"
    rm -f /run/munge/munged.pid /run/munge/munge.socket.2*
    runuser -u munge -- /usr/sbin/munged
fi
wait_for 20 "munge" bash -c 'munge -n | unmunge'

# --------------------------------------------------------------------------
# mariadb (accounting database)
# --------------------------------------------------------------------------
if ! pid_alive /run/mysqld/mysqld.pid; then
    log "starting mariadbd"
    if [[ ! -d /var/lib/mysql/mysql ]]; then
        t 120 mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    fi
    touch "$LOG/mariadb.log" && chown mysql:mysql "$LOG/mariadb.log"
    nohup setsid /usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid \
        --log-error="$LOG/mariadb.log" >/dev/null 2>&1 </dev/null &
fi
wait_for 60 "mariadbd" t 5 mariadb-admin --connect-timeout=2 ping
t 30 mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '${DB_PASS}';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

# --------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------
host=$(hostname -s)
node_line=$(slurmd -C | head -n1)
[[ $node_line == NodeName=* ]] || die "unexpected 'slurmd -C' output: $node_line"
cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$node_line")
realmem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node_line")
# a default per-CPU memory, else one job without --mem takes the whole node
defmem=$((realmem / cpus / 2))
((defmem > 4000)) && defmem=4000

gres_types="" node_gres=""
: >"$ETC/gres.conf.new"
if ((FAKE_GPUS > 0)); then
    gres_types="GresTypes=gpu"
    node_gres=" Gres=gpu:${FAKE_GPUS}"
    for ((i = 0; i < FAKE_GPUS; i++)); do
        echo "Name=gpu File=/dev/null" >>"$ETC/gres.conf.new"
    done
fi

cat >"$ETC/slurmdbd.conf" <<EOF
# generated by tests/cluster/slurm_up.sh -- throw-away test cluster
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=${DB_PASS}
StorageLoc=slurm_acct_db
EOF
chown slurm:slurm "$ETC/slurmdbd.conf"
chmod 600 "$ETC/slurmdbd.conf"

cat >"$ETC/slurm.conf.new" <<EOF
# generated by tests/cluster/slurm_up.sh -- throw-away test cluster
ClusterName=${CLUSTER}
SlurmctldHost=${host}
AuthType=auth/munge
SlurmUser=slurm
SlurmdUser=root
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
ReturnToService=2
# no cgroups here.  pgid rather than linuxproc: with linuxproc a job's
# processes that get re-parented to init (the batch-level snakemake after its
# shell is killed by scancel) escape the final SIGKILL and linger forever
ProctrackType=${PROCTRACK}
TaskPlugin=task/affinity
# scheduling: react immediately.  MinJobAge must exceed the plugin's longest
# poll gap (180 s) because profiles/slurm-ci queries job states with squeue
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=${defmem}
MinJobAge=${MIN_JOB_AGE}
KillWait=5
InactiveLimit=0
Waittime=0
# accounting
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=10
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageEnforce=associations
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
# node and partition
${gres_types}
${node_line}${node_gres} State=UNKNOWN
PartitionName=${PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
# install; remember whether running daemons need a restart
conf_changed=0
for f in slurm.conf gres.conf; do
    if ! cmp -s "$ETC/$f.new" "$ETC/$f"; then
        conf_changed=1
        mv -f "$ETC/$f.new" "$ETC/$f"
    else
        rm -f "$ETC/$f.new"
    fi
    chmod 644 "$ETC/$f"
done
node=$(sed -n 's/^NodeName=\([^ ]*\).*/\1/p' <<<"$node_line")

# --------------------------------------------------------------------------
# slurmdbd, cluster + account registration
# --------------------------------------------------------------------------
if ! pid_alive "$RUN/slurmdbd.pid"; then
    log "starting slurmdbd"
    rm -f "$RUN/slurmdbd.pid"
    slurmdbd
fi
wait_for 60 "slurmdbd" t 10 sacctmgr -n list cluster

if [[ -z $(t 20 sacctmgr -n -P list cluster "$CLUSTER" format=cluster) ]]; then
    t 20 sacctmgr -i add cluster "$CLUSTER" >/dev/null
fi
if [[ -z $(t 20 sacctmgr -n -P list account "$ACCOUNT" format=account) ]]; then
    t 20 sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" \
        Description="nmrnn test account" Organization=nmrnn >/dev/null
fi
if [[ -z $(t 20 sacctmgr -n -P list assoc cluster="$CLUSTER" user=root account="$ACCOUNT" format=user) ]]; then
    t 20 sacctmgr -i add user root Account="$ACCOUNT" Cluster="$CLUSTER" >/dev/null
fi
t 20 sacctmgr -i modify user root set DefaultAccount="$ACCOUNT" >/dev/null 2>&1 || true

# --------------------------------------------------------------------------
# slurmctld + slurmd
# --------------------------------------------------------------------------
stop_daemon() { # name pidfile
    local pid
    pid_alive "$2" || return 0
    pid=$(cat "$2")
    log "restarting $1 (configuration changed)"
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && die "$1 (pid $pid) did not stop"
    rm -f "$2"
}
if ((conf_changed)); then
    stop_daemon slurmd "$RUN/slurmd.pid"
    stop_daemon slurmctld "$RUN/slurmctld.pid"
fi
if ! pid_alive "$RUN/slurmctld.pid"; then
    log "starting slurmctld"
    rm -f "$RUN/slurmctld.pid"
    slurmctld
fi
wait_for 30 "slurmctld" t 10 scontrol ping
if ! pid_alive "$RUN/slurmd.pid"; then
    log "starting slurmd"
    rm -f "$RUN/slurmd.pid"
    slurmd
fi

# wait until the node is idle (resume it once if it came back DOWN/DRAINED)
deadline=$((SECONDS + WAIT))
resumed=0
while :; do
    state=$(t 10 sinfo -h -n "$node" -o %T 2>/dev/null | head -n1 || true)
    case $state in
    idle | mixed | allocated) break ;;
    down* | drain* | fail*)
        if ((!resumed)); then
            t 10 scontrol update NodeName="$node" State=RESUME || true
            resumed=1
        fi
        ;;
    esac
    if ((SECONDS >= deadline)); then
        die "node '$node' not idle after ${WAIT}s (state: '${state:-unknown}'); see ${LOG}/slurmctld.log and ${LOG}/slurmd.log"
    fi
    sleep 0.5
done

t_end=$(date +%s.%N)
log "cluster '${CLUSTER}' up: node ${node} (${cpus} CPUs, ${realmem} MB, DefMemPerCPU=${defmem}) partition=${PARTITION} account=${ACCOUNT}"
awk -v a="$t_start" -v b="$t_end" 'BEGIN { printf "[slurm_up] ready in %.1f s\n", b - a }' >&2
