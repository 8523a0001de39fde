"""Machines made any other way (on-prem, another cloud, hand-made EC2): a YAML hosts file lists them.

    hosts:
      - address: 203.0.113.10      # what SSH connects to (IP or DNS name)
        user: ubuntu
        key: ~/.ssh/id_ed25519     # relative paths are relative to the hosts file
        private_ip: 10.0.0.10      # rank 0's becomes MASTER_ADDR; default: address (when it is an IP)
        rank: 0                    # optional: all or none; default: the order of the list
        port: 22
        gpus: 8
        gpu_memory_gib: 80

The whole file is validated before any connection. Host keys are then scanned once and pinned; a later
`cluster up` keeps the pinned keys instead of trusting whatever answers. `cluster down` forgets the machines
(inventory and pinned keys) and never touches them.
"""

import ipaddress
import os
import re
import shutil
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from swiftfleet import hostkeys, paths
from swiftfleet.errors import SwiftfleetError
from swiftfleet.inventory import Cluster, Node, known_hosts_path, remove_inventory, write_inventory
from swiftfleet.settings import HostsCluster
from swiftfleet.validation import parse, read_yaml

HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$"
)


class Machine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str
    user: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_.-]*$")]
    key: Path
    private_ip: ipaddress.IPv4Address | None = None
    rank: Annotated[int, Field(ge=0)] | None = None
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    gpus: Annotated[int, Field(ge=0)] = 0
    gpu_memory_gib: Annotated[float, Field(ge=0)] = 0

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        if re.fullmatch(r"[\d.]+", v):
            try:
                ipaddress.IPv4Address(v)
            except ValueError:
                raise ValueError(f"{v!r} is not a valid IPv4 address") from None
        elif not HOSTNAME.match(v):
            raise ValueError(f"{v!r} is neither an IPv4 address nor a host name")
        return v

    @field_validator("key")
    @classmethod
    def _key(cls, v: Path) -> Path:
        path = v.expanduser()
        if not path.is_file() or not os.access(path, os.R_OK):
            raise ValueError(f"key file {path} does not exist or is not readable")
        return path.resolve()

    @model_validator(mode="after")
    def _private_ip(self) -> "Machine":
        if self.private_ip is None and not re.fullmatch(r"[\d.]+", self.address):
            raise ValueError(f"private_ip is required: address {self.address!r} is a host name")
        return self

    @property
    def ip(self) -> ipaddress.IPv4Address:
        """The private IP other nodes use (MASTER_ADDR for rank 0)."""
        return self.private_ip or ipaddress.IPv4Address(self.address)


class HostsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hosts: Annotated[list[Machine], Field(min_length=1)]

    @field_validator("hosts")
    @classmethod
    def _unique(cls, hosts: list[Machine]) -> list[Machine]:
        ranks = [m.rank for m in hosts if m.rank is not None]
        if ranks and len(ranks) != len(hosts):
            raise ValueError("give a rank to every machine or to none (then the list order is the rank)")
        for what, values in (
            ("rank", [str(r) for r in ranks]),
            ("private_ip", [str(m.ip) for m in hosts]),
            ("address:port", [f"{m.address}:{m.port}" for m in hosts]),
        ):
            dup = sorted({v for v in values if values.count(v) > 1})
            if dup:
                raise ValueError(f"duplicate {what} {', '.join(dup)}")
        if ranks and sorted(ranks) != list(range(len(ranks))):
            raise ValueError(f"ranks must be 0..{len(ranks) - 1}, each once")
        return hosts

    def ranked(self) -> list[tuple[int, Machine]]:
        return sorted(((i if m.rank is None else m.rank), m) for i, m in enumerate(self.hosts))


def load(path: Path) -> HostsFile:
    """Read and validate the hosts file: one SwiftfleetError line for the first problem, no connection made."""
    data = read_yaml(path, "hosts file")
    if not isinstance(data, dict):
        raise SwiftfleetError(f"hosts file {path}: expected a mapping with a `hosts:` list of machines")
    if isinstance(data.get("hosts"), list):
        base = path.expanduser().resolve().parent
        for entry in data["hosts"]:
            key = entry.get("key") if isinstance(entry, dict) else None
            if isinstance(key, str) and not key.startswith(("/", "~")):
                entry["key"] = str(base / key)
    return parse(HostsFile, data, f"hosts file {path}")


def up(spec: HostsCluster, assume_yes: bool, force: bool = False) -> Cluster:
    """Validate the hosts file, pin each machine's host keys (once) and write the inventory."""
    del assume_yes, force  # nothing is created, billed or replaced
    machines = load(spec.hosts_file).ranked()
    pinned = _pinned(spec.name)
    nodes, known_hosts = [], []
    for rank, m in machines:
        name = f"{spec.name}-node{rank}"
        lines = hostkeys.known_hosts_lines(
            m.address, m.port, pinned.get(hostkeys.host_field(m.address, m.port), [])
        )
        if not lines:
            lines = hostkeys.scan(m.address, m.port)
            hostkeys.announce(name, lines, "ssh-keyscan: compare with the machine's console")
        known_hosts += lines
        nodes.append(
            Node(
                name=name, rank=rank, ansible_host=m.address, private_ip=m.ip, ssh_user=m.user,
                ssh_key=m.key, ssh_port=m.port, gpu_count=m.gpus, gpu_memory_gib=m.gpu_memory_gib,
                instance_type="own",
            )
        )  # fmt: skip
    cluster = Cluster(name=spec.name, provider="hosts", nodes=nodes, idle_stop_minutes=spec.idle_stop_minutes)
    write_inventory(cluster, known_hosts)
    return cluster


def down(spec: HostsCluster) -> None:
    """Forget the machines (inventory, pinned keys, state); the machines themselves are left as they are."""
    remove_inventory(spec.name)
    shutil.rmtree(paths.state_dir() / spec.name, ignore_errors=True)


def _pinned(cluster: str) -> dict[str, list[str]]:
    """Keys pinned by an earlier `cluster up`, by known_hosts host field (as `<type> <base64>`)."""
    path = known_hosts_path(cluster)
    keys: dict[str, list[str]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3:
                keys.setdefault(parts[0], []).append(f"{parts[1]} {parts[2]}")
    return keys
