"""The NCCL test's plan and its rendered command: plugin environment, hostfile, -n, the binary, the refusals."""

from typing import Any

import pytest

from swiftfleet.errors import SwiftfleetError
from swiftfleet.filters import nccl_test_plan
from swiftfleet.nccl_plan import NodeFacts, build
from swiftfleet.nccl_test import render_script

CUDA = "/usr/local/cuda-{0}/efa/test-cuda-{0}/all_reduce_perf"


def node(rank: int, **changes: Any) -> NodeFacts:
    base: dict[str, Any] = {
        "host": f"demo-node{rank}", "rank": rank, "private_ip": f"10.0.1.{10 + rank}", "user": "ubuntu",
        "inventory_gpus": 8, "instance_type": "p4d.24xlarge", "nvidia_smi": True, "gpus": 8, "driver": "570.133.20",
        "binaries": [CUDA.format("12.8"), CUDA.format("13.0")], "efa_devices": 4, "mpirun": True, "plugin": True,
    }  # fmt: skip
    return NodeFacts(**{**base, **changes})


EXPECTED_2X_P4D = """\
cat > /tmp/swiftfleet-nccl-r1/hostfile <<'HOSTS'
10.0.1.10 slots=8
10.0.1.11 slots=8
HOSTS
exec /opt/amazon/openmpi/bin/mpirun \\
  --hostfile /tmp/swiftfleet-nccl-r1/hostfile -n 16 \\
  --mca plm_rsh_args '-i /tmp/swiftfleet-nccl-r1/id_ed25519 -o IdentitiesOnly=yes -o UserKnownHostsFile=/tmp/swiftfleet-nccl-r1/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes' \\
  --mca pml ^cm --mca btl tcp,self --mca btl_tcp_if_exclude lo,docker0 --bind-to none \\
  -x LD_LIBRARY_PATH=/opt/amazon/ofi-nccl/lib:/opt/amazon/efa/lib:/opt/amazon/openmpi/lib:/usr/local/cuda-12.8/lib:/usr/local/cuda-12.8/lib64 \\
  -x FI_PROVIDER=efa \\
  -x FI_EFA_USE_HUGE_PAGE=0 \\
  -x 'NCCL_NET=AWS Libfabric' \\
  -x 'NCCL_SOCKET_IFNAME=^docker,lo,veth' \\
  -x NCCL_DEBUG=INFO \\
  -x NCCL_DEBUG_SUBSYS=INIT,NET \\
  /usr/local/cuda-12.8/efa/test-cuda-12.8/all_reduce_perf -b 8 -e 1G -f 2 -g 1 -c 1 -n 100 2>&1
"""


def test_two_p4d_nodes_render_the_exact_command() -> None:
    plan = build("demo", [node(1), node(0)], "r1")
    assert plan.run and plan.efa and plan.np == 16 and not plan.notes
    script = render_script(plan)
    assert script.startswith("#!/bin/bash\n")
    assert script.split("set -euo pipefail\n", 1)[1] == EXPECTED_2X_P4D


def test_the_binary_is_the_newest_cuda_every_driver_runs() -> None:
    # 13.0 needs driver >= 580.65.06 (data/stack.yml): a 570 driver on one node keeps both at 12.8.
    plan = build("demo", [node(0, driver="580.95.05"), node(1)], "r1")
    assert plan.binary == CUDA.format("12.8")
    plan = build("demo", [node(0, driver="580.95.05"), node(1, driver="580.95.05")], "r1")
    assert plan.binary == CUDA.format("13.0")
    with pytest.raises(
        SwiftfleetError, match=r"no /usr/local/cuda-\*/efa/.* \(CUDA releases found on every node: 12.8\)"
    ):
        build("demo", [node(0, driver="535.54.03", binaries=[CUDA.format("12.8")])], "r1")


def test_root_gets_allow_run_as_root_and_uneven_nodes_their_own_slots() -> None:
    plan = build("demo", [node(0, user="root", gpus=4, inventory_gpus=4), node(1)], "r1")
    script = render_script(plan)
    assert "10.0.1.10 slots=4\n10.0.1.11 slots=8\n" in script
    assert " -n 12 \\\n  --allow-run-as-root \\\n" in script


def test_nodes_without_efa_run_over_sockets_without_the_plugin() -> None:
    plan = build(
        "demo",
        [node(r, instance_type="g5.2xlarge", gpus=1, inventory_gpus=1, efa_devices=0) for r in (0, 1)],
        "r1",
    )
    assert not plan.efa
    assert plan.env == [
        ("LD_LIBRARY_PATH", "/opt/amazon/openmpi/lib:/usr/local/cuda-12.8/lib:/usr/local/cuda-12.8/lib64"),
        ("NCCL_SOCKET_IFNAME", "^docker,lo,veth"), ("NCCL_DEBUG", "INFO"), ("NCCL_DEBUG_SUBSYS", "INIT,NET"),
    ]  # fmt: skip


def test_cpu_nodes_are_not_run_and_say_so() -> None:
    cpu = [node(r, inventory_gpus=0, instance_type="local", nvidia_smi=False, gpus=0, driver=None, binaries=[],
                efa_devices=0, mpirun=False, plugin=False) for r in (0, 1)]  # fmt: skip
    plan = build("sfnccl", cpu, "r1")
    assert not plan.run
    assert plan.skip_reason == (
        "NOT run: no GPU on demo-node0 (no /usr/bin/nvidia-smi), demo-node1 (no /usr/bin/nvidia-smi)"
    )
    assert plan.binary == "/usr/local/cuda-X.Y/efa/test-cuda-X.Y/all_reduce_perf"
    assert plan.np == 2 and plan.efa  # the EFA form a GPU cluster gets, one slot per node
    assert len(plan.notes) == 2


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"nvidia_smi": False},
            r"demo-node1 should have 8 GPU\(s\) \(p4d.24xlarge\) but has no /usr/bin/nvidia-smi",
        ),
        ({"gpus": 7}, r"demo-node1 should have 8 GPU\(s\) \(p4d.24xlarge\), nvidia-smi lists 7"),
        (
            {"efa_devices": 0},
            r"demo-node1 is a p4d.24xlarge \(4 EFA interface\(s\)\) but no EFA device was found",
        ),
        ({"plugin": False}, r"demo-node1 has EFA but no aws-ofi-nccl plugin"),
        ({"mpirun": False}, r"demo-node1 has no /opt/amazon/openmpi/bin/mpirun"),
        ({"gpu_switch": "false"}, r"every node needs a GPU; none on demo-node1"),
    ],
)
def test_a_run_that_would_not_be_honest_is_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SwiftfleetError, match=message):
        build("demo", [node(0), node(1, **changes)], "r1")


def test_efa_on_some_nodes_only_is_refused() -> None:
    other = {"instance_type": "g5.2xlarge", "gpus": 1, "inventory_gpus": 1}
    with pytest.raises(SwiftfleetError, match="EFA on some nodes only; none on demo-node1"):
        build("demo", [node(0, **other, efa_devices=1), node(1, **other, efa_devices=0)], "r1")


def test_the_filter_gives_the_plan_or_its_one_line() -> None:
    facts = [node(0).model_dump(), node(1).model_dump()]
    assert nccl_test_plan(facts, "demo", "r1")["hostfile"] == "/tmp/swiftfleet-nccl-r1/hostfile"
    facts[1]["gpus"] = 2
    assert nccl_test_plan(facts, "demo", "r1") == {
        "error": "nccl-test: demo-node1 should have 8 GPU(s) (p4d.24xlarge), nvidia-smi lists 2 (run `make check`)"
    }


def test_the_filter_turns_bad_facts_into_one_line() -> None:
    facts = [{**node(0).model_dump(), "gpu_switch": "yes-please"}]
    error = nccl_test_plan(facts, "demo", "r1")["error"]
    assert error.startswith(
        "nccl-test: a node's facts do not fit the plan: 1 validation error for NodeFacts gpu_switch"
    )
    assert "\n" not in error
