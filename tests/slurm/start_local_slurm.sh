#!/usr/bin/env bash
# A real one-node SLURM cluster on localhost, for tests/test_slurm_cluster.py (and by hand).
#
#   tests/slurm/start_local_slurm.sh start DIR   # install if needed, configure, start; idempotent
#   tests/slurm/start_local_slurm.sh stop DIR    # kill the daemons by their PID files; idempotent
#   tests/slurm/start_local_slurm.sh status DIR  # exit 0 when the node is up and idle/allocated
#
# Everything the cluster writes (slurm.conf, state, spool, logs, PID files) lives in DIR; all
# traffic stays on loopback. The one thing outside DIR is /etc/slurm/slurm.conf, a link to
# DIR/slurm.conf while the cluster runs: the slurm executor plugin strips SLURM_* variables (so
# SLURM_CONF) from a job's environment, and srun inside the job then reads the default path, as on
# any real cluster. `stop` removes the link; a slurm.conf that is not our link is never touched
# (start fails instead).
# The node is called localhost and has two partitions, `cpu` (default) and `gpu`, like the ones
# profiles/slurm asks for, and one fake GPU (gres.conf points it at /dev/null) so that jobs asking
# for --gpus=1 are scheduled, one at a time; torch in the jobs still sees no GPU.
# Needs Debian/Ubuntu packages slurmctld slurmd slurm-client munge (installed with apt when
# missing, which needs root or sudo) and root to run the daemons. Tested with SLURM 22.05.
set -euo pipefail

usage() { echo "usage: $0 start|stop|status DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
conf=$dir/slurm.conf
system_conf=/etc/slurm/slurm.conf
export SLURM_CONF=$conf  # written before any client runs: without it they try a DNS SRV lookup

sudo_prefix() { [ "$(id -u)" = 0 ] || echo sudo; }

alive() {  # alive PIDFILE: the process named there is running
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

install_packages() {
    local missing=()
    for command in slurmctld slurmd sbatch munged; do
        command -v "$command" >/dev/null 2>&1 || missing+=("$command")
    done
    [ ${#missing[@]} -eq 0 ] && return
    echo "installing SLURM and munge with apt (missing: ${missing[*]})"
    local sudo
    sudo=$(sudo_prefix)
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge >"$dir/apt.log" 2>&1 \
        || { tail -20 "$dir/apt.log" >&2; exit 1; }
}

write_config() {
    mkdir -p "$dir/state" "$dir/spool" "$dir/log"
    local cpus memory
    cpus=$(nproc)
    # At or below what slurmd detects, or the node is drained for having too little memory.
    memory=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    memory=$((memory * 9 / 10))
    cat >"$conf" <<EOF
# Written by tests/slurm/start_local_slurm.sh: a one-node cluster on loopback.
ClusterName=w2s-test
SlurmctldHost=localhost
SlurmctldPort=6817
SlurmdPort=6818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
# No cgroups: plain process tracking, no task binding, no accounting database.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Finished jobs stay visible to squeue for an hour: the test profile polls with squeue, and the
# test lists the partitions its jobs ran in at the end of a test session of up to 20 minutes.
MinJobAge=3600
ReturnToService=2
SchedulerType=sched/backfill
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP
EOF
    if [ -e "$system_conf" ] || [ -L "$system_conf" ]; then
        if ! is_our_link; then
            echo "$0: $system_conf exists and is not this test cluster's; not touching it" >&2
            exit 1
        fi
    fi
    mkdir -p "$(dirname "$system_conf")"
    ln -sfn "$conf" "$system_conf"
    cat >"$dir/gres.conf" <<EOF
# One fake GPU (/dev/null as its device): jobs asking for a GPU get scheduled; torch sees none.
NodeName=localhost Name=gpu File=/dev/null
EOF
}

is_our_link() {  # /etc/slurm/slurm.conf links to a slurm.conf this script wrote, or dangles
    [ -L "$system_conf" ] && { [ ! -e "$system_conf" ] || head -1 "$system_conf" \
        | grep -q "^# Written by tests/slurm/start_local_slurm.sh"; }
}

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
    if munge_works; then return; fi  # a munged already serves this machine
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    # munged refuses to run as root, or with files its user does not own; its default paths
    # (not DIR, which may sit in a private temporary folder) are the package's.
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    runuser -u munge -- /usr/sbin/munged \
        || { tail -n 5 /var/log/munge/munged.log >&2 || true; exit 1; }
    munge_works || { echo "$0: munged started but does not answer" >&2; exit 1; }
    cp /run/munge/munged.pid "$dir/munged.pid"  # ours: `stop` ends it
}

node_ready() {  # the node is registered and can take jobs
    local state
    state=$(timeout 5 sinfo -h -n localhost -o %T 2>/dev/null | head -1) || return 1
    case $state in idle | mixed | allocated | completing) return 0 ;; *) return 1 ;; esac
}

start() {
    [ "$(id -u)" = 0 ] || { echo "$0: the SLURM daemons must run as root" >&2; exit 1; }
    install_packages
    if alive "$dir/slurmctld.pid" && alive "$dir/slurmd.pid" && node_ready; then
        echo "SLURM already running (SLURM_CONF=$conf)"
        return
    fi
    stop_daemons
    write_config
    start_munge
    slurmctld -f "$conf" -i  # -i: ignore state from an earlier run
    slurmd -f "$conf" -N localhost  # -N: register as localhost, not the machine's hostname
    local deadline=$((SECONDS + 30))
    while [ $SECONDS -lt $deadline ]; do
        # Both PIDs alive: a daemon that died (say, its port was taken by another cluster) is not
        # mistaken for the other cluster answering.
        if alive "$dir/slurmctld.pid" && alive "$dir/slurmd.pid" && node_ready; then
            echo "SLURM up: $(sinfo -h -o '%P %D %T %c CPUs %m MB %G')"
            echo "export SLURM_CONF=$conf"
            return
        fi
        sleep 0.5
    done
    echo "$0: the node did not come up within 30 s; logs:" >&2
    tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
    timeout 5 sinfo -N -o "%N %T %E" >&2 || true
    exit 1
}

stop_daemons() {
    for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munged.pid"; do
        if alive "$pidfile"; then
            kill "$(cat "$pidfile")"
            for _ in $(seq 1 50); do alive "$pidfile" || break; sleep 0.1; done
            alive "$pidfile" && kill -9 "$(cat "$pidfile")" 2>/dev/null || true
        fi
        rm -f "$pidfile"
    done
}

case $action in
    start) start ;;
    stop)
        stop_daemons
        if [ "$(readlink "$system_conf" 2>/dev/null)" = "$conf" ]; then rm -f "$system_conf"; fi
        echo "SLURM stopped ($dir)"
        ;;
    status) node_ready ;;
    *) usage ;;
esac
