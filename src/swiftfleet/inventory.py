"""The Ansible inventory every provider writes: one `<cluster>.yml` per cluster, one group per cluster.

Host keys are pinned in `<state>/<cluster>/known_hosts`, and every SSH connection uses that file with
StrictHostKeyChecking=yes: a node whose key changed is refused, never silently trusted.
"""

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from swiftfleet import paths
from swiftfleet.errors import SwiftfleetError


class Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    rank: Annotated[int, Field(ge=0)]
    ansible_host: str
    private_ip: ipaddress.IPv4Address
    ssh_user: str
    ssh_key: Path
    ssh_port: Annotated[int, Field(ge=1, le=65535)] = 22
    gpu_count: Annotated[int, Field(ge=0)] = 0
    gpu_memory_gib: Annotated[float, Field(ge=0)] = 0
    instance_type: str = "unknown"
    instance_id: str | None = None
    availability_zone: str | None = None


class SharedFs(BaseModel):
    """The cluster's shared file system (aws: shared_fs: efs), carried to every node as swiftfleet_shared_fs:
    what it is and the address the nodes mount (roles/node_storage, at /shared)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["efs"]
    address: Annotated[str, Field(min_length=1)]


class Cluster(BaseModel):
    """What an inventory file holds, read back: the cluster's name, provider and ranked nodes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    provider: str
    nodes: list[Node]
    # The one port the cluster opens to clients for `swift deploy` (aws: the security group's deploy_port);
    # None where nothing in front of the nodes filters ports (local, hosts).
    deploy_port: int | None = None
    # The cluster file's idle_stop_minutes, carried to the nodes as swiftfleet_idle_stop_minutes (roles/idle_stop).
    idle_stop_minutes: Annotated[int, Field(ge=0)] = 0
    # The aws cluster file's spot, carried as swiftfleet_spot: spot nodes watch for the interruption notice.
    spot: bool = False
    # The shared file system, if the cluster has one; the inventory then carries it as swiftfleet_shared_fs.
    shared_fs: SharedFs | None = None

    @field_validator("nodes")
    @classmethod
    def _ranked(cls, nodes: list[Node]) -> list[Node]:
        return sorted(nodes, key=lambda n: n.rank)

    @model_validator(mode="after")
    def _consistent(self) -> "Cluster":
        if [n.rank for n in self.nodes] != list(range(len(self.nodes))):
            raise ValueError("node ranks must be 0..N-1, each once")
        for attr in ("name", "private_ip"):
            values = [getattr(n, attr) for n in self.nodes]
            if len(set(values)) != len(values):
                raise ValueError(f"duplicate node {attr.replace('_', ' ')} in the cluster")
        return self

    @property
    def master_addr(self) -> str:
        """Rank 0's private IP, the MASTER_ADDR of every node (rank 0 included)."""
        return str(self.nodes[0].private_ip)


def inventory_path(cluster: str) -> Path:
    return paths.inventory_dir() / f"{cluster}.yml"


def known_hosts_path(cluster: str) -> Path:
    return paths.state_dir() / cluster / "known_hosts"


def write_inventory(cluster: Cluster, known_hosts: list[str]) -> Path:
    """Write the inventory and the pinned host keys (lines in known_hosts format) for `cluster`."""
    kh = known_hosts_path(cluster.name)
    kh.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    kh.write_text("".join(line.rstrip("\n") + "\n" for line in known_hosts))
    hosts = {
        n.name: {
            "ansible_host": n.ansible_host,
            "ansible_port": n.ssh_port,
            "ansible_user": n.ssh_user,
            "ansible_ssh_private_key_file": str(n.ssh_key),
            "node_rank": n.rank,
            "private_ip": str(n.private_ip),
            "gpu_count": n.gpu_count,
            "gpu_memory_gib": n.gpu_memory_gib,
            "instance_type": n.instance_type,
            "instance_id": n.instance_id,
            "availability_zone": n.availability_zone,
        }
        for n in cluster.nodes
    }
    group_vars: dict[str, object] = {
        "swiftfleet_cluster": cluster.name,
        "swiftfleet_provider": cluster.provider,
        "master_addr": cluster.master_addr,
        "swiftfleet_deploy_port": cluster.deploy_port,
        "swiftfleet_idle_stop_minutes": cluster.idle_stop_minutes,
        "swiftfleet_spot": cluster.spot,
        "ansible_ssh_common_args": f"-o UserKnownHostsFile={kh} -o StrictHostKeyChecking=yes",
    }
    if cluster.shared_fs is not None:  # absent, not null, without one: `is defined` then means "there is one"
        group_vars["swiftfleet_shared_fs"] = cluster.shared_fs.model_dump()
    group = {"hosts": hosts, "vars": group_vars}
    path = inventory_path(cluster.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# Written by swiftfleet for cluster {cluster.name!r} ({cluster.provider}); regenerated on cluster up.\n"
    path.write_text(
        header + yaml.safe_dump({"all": {"children": {group_name(cluster.name): group}}}, sort_keys=False)
    )
    return path


def group_name(cluster: str) -> str:
    """Ansible group names cannot hold '-'."""
    return cluster.replace("-", "_")


def read_inventory(cluster: str) -> Cluster:
    path = inventory_path(cluster)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError:
        raise SwiftfleetError(
            f"no inventory for cluster {cluster!r} at {path}: run `make cluster-up` first"
        ) from None
    except (yaml.YAMLError, UnicodeDecodeError):
        data = None
    try:
        group = data["all"]["children"][group_name(cluster)]
        nodes = [
            Node(
                name=name,
                rank=h["node_rank"],
                ansible_host=h["ansible_host"],
                private_ip=h["private_ip"],
                ssh_user=h["ansible_user"],
                ssh_key=Path(h["ansible_ssh_private_key_file"]),
                ssh_port=h["ansible_port"],
                gpu_count=h["gpu_count"],
                gpu_memory_gib=h["gpu_memory_gib"],
                instance_type=h["instance_type"],
                instance_id=h["instance_id"],
                availability_zone=h["availability_zone"],
            )
            for name, h in group["hosts"].items()
        ]
        return Cluster(
            name=cluster,
            provider=group["vars"]["swiftfleet_provider"],
            nodes=nodes,
            deploy_port=group["vars"].get("swiftfleet_deploy_port"),
            idle_stop_minutes=group["vars"].get("swiftfleet_idle_stop_minutes", 0),
            spot=group["vars"].get("swiftfleet_spot", False),
            shared_fs=group["vars"].get("swiftfleet_shared_fs"),
        )
    except (TypeError, KeyError, AttributeError, ValueError) as exc:  # ValidationError is a ValueError
        # Edited by hand or written by another tool: the kit cannot tell which nodes it holds.
        raise SwiftfleetError(
            f"inventory {path} is not one `cluster up` wrote for {cluster!r} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            "run `make cluster-up` again"
        ) from None


def remove_inventory(cluster: str) -> None:
    """The cluster's inventory, pinned host keys and setup record: a later cluster of that name has new nodes,
    which no plan may take as set up."""
    from swiftfleet.jobs.node_facts import facts_file

    for path in (inventory_path(cluster), known_hosts_path(cluster), facts_file(cluster)):
        path.unlink(missing_ok=True)
