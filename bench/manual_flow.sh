#!/usr/bin/env bash
# The seed's manual flow, as an engineer scripts it by hand: plain ssh and scp, one node after the other.
# bench/manual_vs_kit.py times each phase; by hand:
#   NODES="ip0 ip1 ..." SSH_KEY=key KNOWN_HOSTS=file bash manual_flow.sh PHASE [ARGS]
#   check                              ssh into each node: host name and cores
#   setup UV MS_SWIFT TORCH [CA ...]   scp setup.sh (manual_setup.sh) and the CA files, run it
#   stage MODEL_DIR DATASET            scp the model directory and the dataset into ~/job
#   launch SWIFT_FLAGS                 ssh nohup swift sft with NNODES/NODE_RANK/MASTER_ADDR/MASTER_PORT/NPROC_PER_NODE
#   tail                               follow rank 0's log until its process ends
#   fetch DEST                         rank 0's output (tar over ssh) and every rank's log (scp) into DEST
# NODES is in rank order; rank 0's address is MASTER_ADDR on every node.
set -euo pipefail
phase=$1
shift
read -ra nodes <<<"$NODES"
opts=(-i "$SSH_KEY" -o UserKnownHostsFile="$KNOWN_HOSTS" -o StrictHostKeyChecking=yes -o BatchMode=yes)
on() {
    local ip=$1
    shift
    ssh "${opts[@]}" "root@$ip" "$@"
}

case $phase in
check)
    for ip in "${nodes[@]}"; do on "$ip" 'hostname && nproc'; done
    ;;
setup)
    versions=("$1" "$2" "$3")
    shift 3
    for ip in "${nodes[@]}"; do
        scp -q "${opts[@]}" "$(dirname "$0")/manual_setup.sh" "$@" "root@$ip:/tmp/"
        cas=()
        for ca in "$@"; do cas+=("/tmp/$(basename "$ca")"); done
        on "$ip" sh /tmp/manual_setup.sh "${versions[@]}" "${cas[@]}"
    done
    ;;
stage)
    for ip in "${nodes[@]}"; do
        on "$ip" mkdir -p job
        scp -q -r "${opts[@]}" "$1" "$2" "root@$ip:job/"
    done
    ;;
launch)
    rank=0
    for ip in "${nodes[@]}"; do
        on "$ip" "cd job || exit 1; NNODES=${#nodes[@]} NODE_RANK=$rank MASTER_ADDR=${nodes[0]} MASTER_PORT=29500 \
NPROC_PER_NODE=1 CUDA_VISIBLE_DEVICES= nohup ~/swift-env/bin/swift sft $1 >rank$rank.log 2>&1 </dev/null & \
echo \$! >job.pid"
        rank=$((rank + 1))
    done
    ;;
tail)
    on "${nodes[0]}" 'tail -n +1 -f --pid="$(cat job/job.pid)" job/rank0.log'
    ;;
fetch)
    mkdir -p "$1"
    # scp -r stops at ms-swift's last-checkpoint symlink ("not a regular file"): the usual tar stream instead.
    on "${nodes[0]}" tar -C job -c output | tar -C "$1" -x
    rank=0
    for ip in "${nodes[@]}"; do
        scp -q "${opts[@]}" "root@$ip:job/rank$rank.log" "$1/"
        rank=$((rank + 1))
    done
    ;;
*)
    echo "unknown phase $phase" >&2
    exit 2
    ;;
esac
