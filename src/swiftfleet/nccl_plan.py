"""The typed plan of `swiftfleet nccl-test`: which nodes, how many ranks, which all_reduce_perf, which environment.

Python decides here; templates/nccl_test/run.sh.j2 only renders the plan (in playbooks/nccl_test.yml on the
controller and in `swiftfleet nccl-test --dry-run` through the same filters); the playbook carries it out.

The command follows the EC2 user guide, "Get started with EFA and NCCL", step "Test your EFA and NCCL
configuration" (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa-start-nccl.html): the DLAMI's OpenMPI
`/opt/amazon/openmpi/bin/mpirun`, a hostfile of the nodes' private IPs with `slots=<GPUs>`, `-n <all GPUs>`,
`--mca pml ^cm --mca btl tcp,self --mca btl_tcp_if_exclude lo,docker0 --bind-to none`, `-x NCCL_DEBUG=INFO`,
`-x LD_LIBRARY_PATH=...:/opt/amazon/efa/lib:/opt/amazon/openmpi/lib:/opt/amazon/ofi-nccl/lib`, and
`all_reduce_perf -b 8 -e 1G -f 2 -g 1 -c 1 -n 100`; the binary is the DLAMI's prebuilt
`/usr/local/cuda-X.Y/efa/test-cuda-X.Y/all_reduce_perf` (DLAMI release notes: "NCCL Tests Location").
Differences, on purpose: no `FI_EFA_USE_DEVICE_RDMA` (legacy on current stacks, as roles/nccl_efa refuses it);
`FI_PROVIDER=efa` and `NCCL_SOCKET_IFNAME=^docker,lo,veth` as the jobs get them (roles/nccl_efa); and
`NCCL_NET="AWS Libfabric"`, which makes NCCL use the aws-ofi-nccl plugin or fail ("Failed to initialize any NET
plugin", NVIDIA/nccl src/plugin/net.cc ncclNetInit) instead of falling back to sockets. "AWS Libfabric" is the
plugin's name up to 1.11 and still accepted by later releases, whose default name is "Libfabric"
(aws/aws-ofi-nccl src/nccl_ofi_interface_nvidia.cpp, nvidia_plugin_name_fixup).
"""

import re
from typing import Literal

from packaging.version import Version
from pydantic import BaseModel, ConfigDict

from swiftfleet import stack
from swiftfleet.errors import SwiftfleetError
from swiftfleet.instance_types import INSTANCE_TYPES

MPIRUN = "/opt/amazon/openmpi/bin/mpirun"
OFI_NCCL_LIB = "/opt/amazon/ofi-nccl/lib"
EFA_LIB = "/opt/amazon/efa/lib"
OPENMPI_LIB = "/opt/amazon/openmpi/lib"
BINARY_GLOB = "/usr/local/cuda-*/efa/test-cuda-*/all_reduce_perf"
PLACEHOLDER_BINARY = "/usr/local/cuda-X.Y/efa/test-cuda-X.Y/all_reduce_perf"
NCCL_NET = "AWS Libfabric"
SOCKET_IFNAME = "^docker,lo,veth"
# The EC2 guide's sweep: 8 B to 1 GiB, doubling, one GPU per process, checked, 100 iterations.
FULL_ARGS = ["-b", "8", "-e", "1G", "-f", "2", "-g", "1", "-c", "1", "-n", "100"]
_BINARY = re.compile(r"^/usr/local/cuda-(\d+\.\d+)/efa/test-cuda-\1/all_reduce_perf$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeFacts(_Model):
    """One node as the inventory has it and, unless a dry run, as the playbook found it (None: not looked)."""

    host: str
    rank: int
    private_ip: str
    user: str
    inventory_gpus: int = 0
    instance_type: str = "unknown"
    gpu_switch: Literal["auto", "true", "false"] = "auto"  # swiftfleet_gpu (roles/README.md)
    nvidia_smi: bool | None = None
    gpus: int | None = None  # nvidia-smi -L lines
    driver: str | None = None
    binaries: list[str] | None = None  # BINARY_GLOB matches
    efa_devices: int | None = None  # /sys/class/infiniband entries bound to the efa driver
    mpirun: bool | None = None
    plugin: bool | None = None  # libnccl-net*.so in OFI_NCCL_LIB


class NcclNode(_Model):
    host: str
    rank: int
    private_ip: str
    slots: int


class NcclTestPlan(_Model):
    cluster: str
    run: bool  # False: nothing is run (no GPU, or a dry run); skip_reason says why
    skip_reason: str
    instance_type: str
    nodes: list[NcclNode]
    np: int
    efa: bool  # the aws-ofi-nccl plugin is forced and EFA is required
    user: str
    allow_run_as_root: bool
    work_dir: str  # on rank 0: hostfile, script, log, the run's SSH key and known_hosts
    mpirun: str
    binary: str
    env: list[tuple[str, str]]  # ordered pairs: a JSON round trip (to_nice_json sorts keys) keeps the order
    test_args: list[str]
    notes: list[str]

    @property
    def hostfile(self) -> str:
        return f"{self.work_dir}/hostfile"

    def for_templates(self) -> dict[str, object]:
        return {**self.model_dump(), "hostfile": self.hostfile}


def build(cluster: str, facts: list[NodeFacts], run_id: str, dry_run: bool = False) -> NcclTestPlan:
    """The plan from every node's facts. Raises SwiftfleetError (one line) where a run would not be honest: GPUs the
    inventory promises but the node lacks, a mixed cluster, EFA on some nodes only, a missing mpirun or plugin."""
    if not facts:
        raise SwiftfleetError(f"nccl-test: cluster {cluster!r} has no nodes")
    facts = sorted(facts, key=lambda f: f.rank)
    notes: list[str] = []
    has_gpu = [_gpu_present(f) for f in facts]
    instance_type = facts[0].instance_type
    skip = ""
    if dry_run:
        skip = "a dry run (--dry-run): nothing was run"
    elif not any(has_gpu):
        skip = "NOT run: no GPU on " + ", ".join(f"{f.host} ({_no_gpu_reason(f)})" for f in facts)
    elif not all(has_gpu):
        lacking = ", ".join(f.host for f, g in zip(facts, has_gpu, strict=True) if not g)
        raise SwiftfleetError(f"nccl-test: every node needs a GPU; none on {lacking} (run `make check`)")
    if skip and not dry_run:
        notes.append(
            "the command above has 1 slot per node: the form a GPU cluster gets, not one for these nodes"
        )
    efa = _efa(facts, run=not skip)
    binary = PLACEHOLDER_BINARY if skip else _binary(facts)
    if skip and binary == PLACEHOLDER_BINARY:
        notes.append(f"the binary is picked on the nodes at run time from {BINARY_GLOB}")
    if not skip:
        _require_tools(facts, efa)
    nodes = [
        NcclNode(host=f.host, rank=f.rank, private_ip=f.private_ip, slots=_slots(f, counted=not skip))
        for f in facts
    ]
    user = facts[0].user
    return NcclTestPlan(
        cluster=cluster,
        run=not skip,
        skip_reason=skip,
        instance_type=instance_type,
        nodes=nodes,
        np=sum(n.slots for n in nodes),
        efa=efa,
        user=user,
        allow_run_as_root=user == "root",
        work_dir=f"/tmp/swiftfleet-nccl-{run_id}",
        mpirun=MPIRUN,
        binary=binary,
        env=_env(efa, binary),
        test_args=FULL_ARGS,
        notes=notes,
    )


def _gpu_present(f: NodeFacts) -> bool:
    """The roles' switch: true/false force it; auto: nvidia-smi was found (the dry run trusts the inventory)."""
    if f.gpu_switch != "auto":
        return f.gpu_switch == "true"
    if f.nvidia_smi is None:
        return f.inventory_gpus > 0
    if not f.nvidia_smi and f.inventory_gpus > 0:
        raise SwiftfleetError(
            f"nccl-test: {f.host} should have {f.inventory_gpus} GPU(s) ({f.instance_type}) but has no "
            "/usr/bin/nvidia-smi: the driver is missing or broken (run `make check`)"
        )
    return bool(f.nvidia_smi)


def _no_gpu_reason(f: NodeFacts) -> str:
    return "swiftfleet_gpu=false" if f.gpu_switch == "false" else "no /usr/bin/nvidia-smi"


def _slots(f: NodeFacts, counted: bool) -> int:
    if not counted:
        return max(f.inventory_gpus, 1)
    found = f.gpus if f.gpus is not None else f.inventory_gpus
    if found < 1 or found < f.inventory_gpus:
        raise SwiftfleetError(
            f"nccl-test: {f.host} should have {f.inventory_gpus} GPU(s) ({f.instance_type}), nvidia-smi lists "
            f"{found} (run `make check`)"
        )
    return found


def _efa(facts: list[NodeFacts], run: bool) -> bool:
    """EFA when the nodes have it: all of them (found on the node; in a dry run, from the instance type)."""
    known = [
        INSTANCE_TYPES[f.instance_type].efa_interfaces if f.instance_type in INSTANCE_TYPES else None
        for f in facts
    ]
    if not run or any(f.efa_devices is None for f in facts):
        return all(k is None or k > 0 for k in known)
    found = [int(f.efa_devices or 0) for f in facts]
    for f, k, n in zip(facts, known, found, strict=True):
        if k and not n:
            raise SwiftfleetError(
                f"nccl-test: {f.host} is a {f.instance_type} ({k} EFA interface(s)) but no EFA device was found "
                "in /sys/class/infiniband: NCCL would use sockets (check the launch template's EFA interfaces)"
            )
    if any(found) and not all(found):
        without = ", ".join(f.host for f, n in zip(facts, found, strict=True) if not n)
        raise SwiftfleetError(f"nccl-test: EFA on some nodes only; none on {without}")
    return all(found)


def _binary(facts: list[NodeFacts]) -> str:
    """The newest DLAMI all_reduce_perf that every node has and whose CUDA release every node's driver runs
    (minimum drivers from the compatibility table, data/stack.yml)."""
    per_node = [{m.group(1) for b in (f.binaries or []) if (m := _BINARY.match(b))} for f in facts]
    common = set.intersection(*per_node)
    drivers = [f.driver for f in facts if f.driver]
    usable = sorted((r for r in common if all(stack.runs_on(r, d) for d in drivers)), key=Version)
    if not usable:
        found = ", ".join(sorted(common, key=Version)) or "none"
        raise SwiftfleetError(
            f"nccl-test: no {BINARY_GLOB} on every node that the driver ({', '.join(sorted(set(drivers))) or '?'}) "
            f"runs (CUDA releases found on every node: {found}); the Deep Learning AMI ships them"
        )
    return f"/usr/local/cuda-{usable[-1]}/efa/test-cuda-{usable[-1]}/all_reduce_perf"


def _require_tools(facts: list[NodeFacts], efa: bool) -> None:
    for f in facts:
        if f.mpirun is False:
            raise SwiftfleetError(f"nccl-test: {f.host} has no {MPIRUN} (the Deep Learning AMI's OpenMPI)")
        if efa and f.plugin is False:
            raise SwiftfleetError(
                f"nccl-test: {f.host} has EFA but no aws-ofi-nccl plugin (libnccl-net*.so) in {OFI_NCCL_LIB}"
            )


def _env(efa: bool, binary: str) -> list[tuple[str, str]]:
    """What mpirun exports to every rank (-x NAME=VALUE), in this order."""
    cuda = binary.split("/efa/", 1)[0]
    libs = [OFI_NCCL_LIB, EFA_LIB] if efa else []
    env = {"LD_LIBRARY_PATH": ":".join([*libs, OPENMPI_LIB, f"{cuda}/lib", f"{cuda}/lib64"])}
    if efa:
        env.update({"FI_PROVIDER": "efa", "FI_EFA_USE_HUGE_PAGE": "0", "NCCL_NET": NCCL_NET})
    env.update({"NCCL_SOCKET_IFNAME": SOCKET_IFNAME, "NCCL_DEBUG": "INFO", "NCCL_DEBUG_SUBSYS": "INIT,NET"})
    return list(env.items())
