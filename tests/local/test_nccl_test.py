"""`swiftfleet nccl-test` through playbooks/nccl_test.yml over real SSH. On CPU nodes it prints the command, says
plainly that nothing ran and exits 0; a GPU on some nodes only is refused in one line; and with stand-ins for the
DLAMI's nvidia-smi, mpirun and all_reduce_perf (no GPU here) the run path is real: rank 0's key of this run
reaches every node by private IP with pinned host keys, the output is judged, and the key is taken out again."""

import json
from pathlib import Path

import pytest

from swiftfleet.inventory import known_hosts_path
from swiftfleet.nccl_plan import NcclTestPlan
from swiftfleet.nccl_test import render_script
from tests.conftest import run_cli
from tests.local.conftest import LocalEnv
from tests.local.test_local_cluster import FAKE_GPU

pytestmark = pytest.mark.docker


def test_cpu_nodes_print_the_command_and_say_it_was_not_run(local3: LocalEnv) -> None:
    local3.up()
    res = run_cli("nccl-test", "--config", str(local3.config), env=local3.env, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    name = local3.spec.name
    nodes = ", ".join(f"{name}-node{r} (no /usr/bin/nvidia-smi)" for r in range(3))
    assert out.rstrip().endswith(f"nccl-test: NOT run: no GPU on {nodes}")
    hosts = "".join(f"{local3.ip(r)} slots=1\n" for r in range(3))
    assert f"<<'HOSTS'\n{hosts}HOSTS\n" in out
    assert " -n 3 \\\n" in out and "-x 'NCCL_NET=AWS Libfabric'" in out
    # The command the playbook rendered (Ansible, on the controller) is the one the Python side renders.
    result = json.loads((known_hosts_path(local3.spec.name).parent / "nccl-test.json").read_text())
    plan = {k: v for k, v in result["plan"].items() if k != "hostfile"}
    assert result["script"] == render_script(NcclTestPlan(**plan))
    assert result["verdict"] is None
    assert "swiftfleet-nccl" not in local3.sh(0, "cat /root/.ssh/authorized_keys")


def test_a_gpu_on_some_nodes_only_is_refused(local3: LocalEnv) -> None:
    local3.up()
    local3.sh(2, f"printf '{FAKE_GPU}' > /usr/bin/nvidia-smi && chmod +x /usr/bin/nvidia-smi")
    try:
        res = run_cli("nccl-test", "--config", str(local3.config), env=local3.env, timeout=120)
    finally:
        local3.sh(2, "rm -f /usr/bin/nvidia-smi")
    assert res.returncode == 2, res.stdout + res.stderr
    name = local3.spec.name
    assert res.stderr.strip().splitlines()[-1] == (
        f"swiftfleet: nccl-test: every node needs a GPU; none on {name}-node0, {name}-node1 (run `make check`)"
    )


# Stand-ins for the DLAMI's tools, on every node: mpirun checks the SSH plumbing the real one relies on (rank 0's
# key of this run and the pinned host keys, by private IP, to every host of the hostfile), prints the -x
# settings it got, then runs the "binary" once, which prints a recorded-format nccl-tests output.
MPIRUN = """#!/bin/bash
set -eu
hostfile= rsh_args=
while [ $# -gt 0 ]; do
  case "$1" in
    --hostfile) hostfile=$2; shift 2;;
    --mca) if [ "$2" = plm_rsh_args ]; then rsh_args=$3; fi; shift 3;;
    -x) echo "mpirun -x $2"; shift 2;;
    -n|--bind-to) shift 2;;
    /*) break;;
    *) shift;;
  esac
done
while read -r ip slots; do ssh -n $rsh_args "$ip" "echo reached \\$(hostname) $slots"; done < "$hostfile"
exec "$@"
"""
CUDA_DIR = "/usr/local/cuda-12.2/efa/test-cuda-12.2"  # the stand-in driver 535.183.01 runs CUDA 12.2


def test_a_run_reaches_every_node_with_its_own_key_and_is_judged(local3: LocalEnv) -> None:
    local3.up()
    log = (Path(__file__).resolve().parents[1] / "data" / "nccl" / "socket_fallback.log").read_text()
    setup = (
        f"printf '{FAKE_GPU}' > /usr/bin/nvidia-smi && chmod +x /usr/bin/nvidia-smi && "
        f"mkdir -p /opt/amazon/openmpi/bin {CUDA_DIR} && "
        f"cat > /opt/amazon/openmpi/bin/mpirun <<'EOF'\n{MPIRUN}EOF\n"
        f"printf '#!/bin/sh\\ncat <<\"EOF\"\\n{log}EOF\\n' > {CUDA_DIR}/all_reduce_perf && "
        f"chmod +x /opt/amazon/openmpi/bin/mpirun {CUDA_DIR}/all_reduce_perf"
    )
    for rank in range(3):
        local3.sh(rank, setup)
    try:
        res = run_cli("nccl-test", "--config", str(local3.config), env=local3.env, timeout=180)
    finally:
        for rank in range(3):
            local3.sh(rank, "rm -rf /usr/bin/nvidia-smi /opt/amazon /usr/local/cuda-12.2")
    assert res.returncode == 0, res.stdout + res.stderr
    # No EFA on these nodes (an unknown instance type, no EFA device): sockets are what they have, and said so.
    assert res.stdout.rstrip().splitlines()[-1] == (
        "nccl-test: bus bandwidth 11.1 GB/s at 1 GiB (sweep average 6.9012) over sockets, no EFA on these nodes "
        "(Socket); expected: unknown for 3x local at 1 GiB (no sourced figure in nccl_busbw.yml)"
    )
    result = json.loads((known_hosts_path(local3.spec.name).parent / "nccl-test.json").read_text())
    assert result["verdict"]["ok"] is True
    output = result["output"]
    assert [line for line in output.splitlines() if line.startswith("reached ")] == [
        f"reached {local3.spec.name}-node{r} slots=1" for r in range(3)
    ]
    assert f"mpirun -x LD_LIBRARY_PATH=/opt/amazon/openmpi/lib:{CUDA_DIR.split('/efa/')[0]}/lib:" in output
    assert "mpirun -x NCCL_DEBUG=INFO" in output
    # The run's key is out of every authorized_keys again, and rank 0's work directory is gone.
    for rank in range(3):
        assert "swiftfleet-nccl" not in local3.sh(rank, "cat /root/.ssh/authorized_keys")
    assert local3.sh(0, "ls /tmp | grep -c swiftfleet-nccl || true").strip() == "0"
