# Sourced by jobs/local_slurm.sh: a one-node Slurm cluster on localhost, in $WORK.
# munged with its own key and socket, slurmctld and slurmd; uses the caller's WORK, py and note.

write_config() {
    local ctld_port=$1 slurmd_port=$2
    # The node offers at least what the job scripts ask for (4 CPUs, 16 GB), whatever this
    # machine has: config_overrides lets slurmd run a node smaller than configured. Its GPU
    # request is the one thing each submission overrides (--gres=none).
    local cpus memory
    cpus=$(( $(nproc) > 4 ? $(nproc) : 4 ))
    memory=$(awk '/^MemTotal:/ { m = int($2 / 1024); print (m > 16384 ? m : 16384) }' /proc/meminfo)
    cat > "$WORK/etc/slurm.conf" <<EOF
ClusterName=localtest
SlurmctldHost=localhost
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# A requeued job waits cred_expire seconds (default 120) before it starts again: 10 s here.
AuthInfo=socket=$WORK/run/munge.socket,cred_expire=10
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/run/slurmctld.pid
SlurmdPidFile=$WORK/run/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
PlugStackConfig=$WORK/etc/plugstack.conf
MailProg=/bin/true
# No cgroups, CPU binding or MPI: what a container or a plain VM supports.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
# The job scripts ask for --partition=gpu.
PartitionName=gpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    echo "CgroupPlugin=cgroup/v1" > "$WORK/etc/cgroup.conf"
    : > "$WORK/etc/plugstack.conf"      # no site SPANK plugins from /etc/slurm
}

start_cluster() {
    mkdir -p "$WORK"/{etc,run,state,spool,log,logs}
    chmod 755 "$WORK"                   # munged wants every folder above its socket searchable
    local ports
    read -r -a ports <<< "$(py ports 2)"
    write_config "${ports[0]}" "${ports[1]}"
    export SLURM_CONF=$WORK/etc/slurm.conf

    # Each step is checked here: main calls this in a condition, where set -e does not act.
    mungekey --create --keyfile="$WORK/etc/munge.key" 2>/dev/null &&
        chmod 400 "$WORK/etc/munge.key" &&
        munged --key-file="$WORK/etc/munge.key" --socket="$WORK/run/munge.socket" \
               --pid-file="$WORK/run/munged.pid" --log-file="$WORK/log/munged.log" \
               --seed-file="$WORK/state/munged.seed" &&
        slurmctld &&
        slurmd -N localhost ||
        return 1
    for _ in $(seq 60); do
        [ "$(sinfo -h -n localhost -o %T 2>/dev/null)" = idle ] && return 0
        sleep 1
    done
    note "the cluster did not come up; the ends of its logs:"
    tail -n 5 "$WORK"/log/*.log >&2
    return 1
}

# Stops what start_cluster started (the daemons by their own pid files) and removes $WORK;
# the EXIT trap, so it runs on success, failure and interruption alike.
cleanup() {
    local status=$? name pid pids=()
    trap - EXIT INT TERM
    [ -n "$WORK" ] || exit "$status"
    for name in slurmd slurmctld munged; do     # read now: daemons remove them as they stop
        [ -f "$WORK/run/$name.pid" ] && pids+=("$(cat "$WORK/run/$name.pid")")
    done
    if [ -f "$WORK/run/slurmctld.pid" ]; then
        # Cancel jobs first: a trainer that gets SIGTERM saves and exits within seconds.
        scancel --quiet --full --user="$(id -un)" 2>/dev/null || true
        for _ in $(seq 30); do
            [ -z "$(squeue -h 2>/dev/null)" ] && break
            sleep 1
        done
        scontrol shutdown >/dev/null 2>&1 || true
    fi
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 20); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [ "${KEEP_LOCAL_SLURM:-}" = 1 ]; then note "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$status"
}
