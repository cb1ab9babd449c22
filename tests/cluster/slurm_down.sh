#!/usr/bin/env bash
# Tear down the throw-away cluster started by tests/cluster/slurm_up.sh.
# Cancels remaining jobs, then stops slurmd, slurmctld, slurmdbd, mariadbd and
# munged by their pid files (never by process name) and removes stale pid
# files.  Safe to run when nothing is running.
#
#   --purge   also delete the generated config, the slurm state directories,
#             the slurm logs and the accounting database (next slurm_up.sh
#             starts from scratch).
set -uo pipefail

PURGE=0
[[ ${1:-} == --purge ]] && PURGE=1

RUN=/run/slurm
log() { printf '[slurm_down] %s\n' "$*" >&2; }
t() { local secs=$1; shift; timeout -k 10 "$secs" "$@"; }

[[ $(id -u) -eq 0 ]] || { log "must run as root"; exit 1; }

stop_pidfile() { # name pidfile [seconds]
    local name=$1 pidfile=$2 secs=${3:-20} pid
    if [[ ! -s $pidfile ]]; then
        return 0
    fi
    pid=$(cat "$pidfile")
    if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null
        local deadline=$((SECONDS + secs))
        while kill -0 "$pid" 2>/dev/null; do
            if ((SECONDS >= deadline)); then
                log "$name did not exit after ${secs}s, sending SIGKILL"
                kill -KILL "$pid" 2>/dev/null
                sleep 0.5
                break
            fi
            sleep 0.2
        done
    fi
    rm -f "$pidfile"
}

# jobs first, while the controller is still there
if [[ -s $RUN/slurmctld.pid ]] && kill -0 "$(cat "$RUN/slurmctld.pid")" 2>/dev/null; then
    if [[ -n $(t 10 squeue -h -o %i 2>/dev/null) ]]; then
        log "cancelling remaining jobs"
        t 20 scancel --full --user=root 2>/dev/null || true
        for _ in $(seq 1 30); do
            [[ -z $(t 10 squeue -h -o %i 2>/dev/null) ]] && break
            sleep 0.5
        done
    fi
fi

stop_pidfile slurmd "$RUN/slurmd.pid"
stop_pidfile slurmctld "$RUN/slurmctld.pid"
stop_pidfile slurmdbd "$RUN/slurmdbd.pid"
if ((PURGE)) && [[ -s /run/mysqld/mysqld.pid ]]; then
    log "dropping the accounting database"
    t 30 mariadb -e "DROP DATABASE IF EXISTS slurm_acct_db" 2>/dev/null || true
fi
stop_pidfile mariadbd /run/mysqld/mysqld.pid 60
stop_pidfile munged /run/munge/munged.pid
# slurmctld leaves this one behind on an unclean stop
rm -f /var/run/slurmctld.pid /run/slurmctld.pid

if ((PURGE)); then
    log "purging config, state and logs"
    rm -f /etc/slurm/slurm.conf /etc/slurm/slurmdbd.conf /etc/slurm/gres.conf /etc/slurm/*.new
    rm -rf /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
fi
log "down"
