"""Local clusters: systemd + sshd containers on a bridge of the cluster's own, driven over real SSH.

Each node is an unprivileged container with systemd as PID 1 and a fixed IP (.10 + rank) on the bridge
`swiftfleet-<name>`; the host reaches the nodes directly, and the nodes reach each other on every port.
Root logs in with a key pair kept under the cluster's state directory; the nodes' host keys are read
over `docker exec` and pinned, so Ansible never has to trust a key it sees first on the network.
"""

import contextlib
import ipaddress
import shutil
import subprocess
import time
from pathlib import Path

import docker
import docker.errors
from docker.models.containers import Container
from docker.models.networks import Network
from docker.types import IPAMConfig, IPAMPool

from swiftfleet import hostkeys, node_jobs, paths
from swiftfleet.errors import SwiftfleetError
from swiftfleet.image import docker_client, node_image, progress
from swiftfleet.inventory import Cluster, Node, remove_inventory, write_inventory
from swiftfleet.settings import LocalCluster

LABEL = "org.swiftfleet.cluster"
RANK_LABEL = "org.swiftfleet.rank"
# One package cache for every local node and Molecule container (the same host directory), kept across
# `cluster down` like the image: N nodes, the next cluster and the role tests download the same wheels once.
CACHE_DIR = Path("/var/cache/swiftfleet")
# A local wheelhouse (the CPU torch build lives here): nodes install from it instead of the registry.
WHEELS = Path("/opt/wheels")
FIRST_HOST = 10
BOOT_TIMEOUT = 60.0
REMOVAL_TIMEOUT = 300.0  # a killed node's removal can take minutes (its processes and mounts torn down)


def network_name(cluster: str) -> str:
    return f"swiftfleet-{cluster}"


def container_name(cluster: str, rank: int) -> str:
    return f"swiftfleet-{cluster}-node{rank}"


def node_addresses(spec: LocalCluster) -> list[ipaddress.IPv4Address]:
    """The nodes' fixed IPs, .10 + rank; refused before any Docker call if the subnet is too small."""
    hosts = spec.subnet.num_addresses - 2
    if FIRST_HOST + spec.node_count > hosts + 1:
        raise SwiftfleetError(
            f"subnet {spec.subnet} has no room for {spec.node_count} nodes at .{FIRST_HOST} upwards: use a larger one"
        )
    return [spec.subnet.network_address + FIRST_HOST + rank for rank in range(spec.node_count)]


def up(spec: LocalCluster, assume_yes: bool, force: bool = False) -> Cluster:
    """Create (or find running) the cluster's nodes, pin their host keys and write the inventory; nodes beyond
    the cluster file's count are removed, after asking while a job runs on them."""
    del assume_yes  # nothing here is billed
    addresses = node_addresses(spec)
    client = docker_client()
    node_image(spec.image)
    extras = [
        c for c in _containers(client, spec.name) if int(c.labels.get(RANK_LABEL, "0")) >= spec.node_count
    ]
    if extras:
        doomed = [int(c.labels.get(RANK_LABEL, "0")) for c in extras]
        node_jobs.guard_ranks(
            spec.name, doomed, f"`cluster up` with {spec.node_count} node(s) removes {{nodes}}", force
        )
    key = _keypair(spec.name)
    network = _network(client, spec)
    _allow_forwarding(spec.name, _bridge(network))
    containers = [_container(client, spec, rank, addresses[rank]) for rank in range(spec.node_count)]
    for extra in extras:
        progress(f"removing {extra.name}: the cluster file asks for {spec.node_count} node(s)")
        extra.remove(force=True, v=True)
    public_key = key.with_name(key.name + ".pub").read_text()
    nodes, known_hosts = [], []
    for rank, (container, ip) in enumerate(zip(containers, addresses, strict=True)):
        lines = hostkeys.known_hosts_lines(str(ip), 22, _prepare(container, public_key))
        hostkeys.announce(f"{spec.name}-node{rank}", lines, "read over docker exec")
        known_hosts += lines
        nodes.append(
            Node(
                name=f"{spec.name}-node{rank}", rank=rank, ansible_host=str(ip), private_ip=ip,
                ssh_user="root", ssh_key=key, instance_type="local", instance_id=container.name,
            )
        )  # fmt: skip
    for ip in addresses:
        hostkeys.wait_for_ssh(str(ip), 22, BOOT_TIMEOUT)
    cluster = Cluster(name=spec.name, provider="local", nodes=nodes, idle_stop_minutes=spec.idle_stop_minutes)
    write_inventory(cluster, known_hosts)
    return cluster


def down(spec: LocalCluster) -> None:
    """Remove the nodes, the bridge, its forwarding rule, the inventory and the cluster's state."""
    client = docker_client()
    for container in _containers(client, spec.name):
        progress(f"removing {container.name}")
        container.remove(force=True, v=True)
    _drop_forwarding(spec.name)
    for network in client.networks.list(filters={"label": f"{LABEL}={spec.name}"}):
        network.remove()
    remove_inventory(spec.name)
    shutil.rmtree(paths.state_dir() / spec.name, ignore_errors=True)


def _containers(client: docker.DockerClient, cluster: str) -> list[Container]:
    return list(client.containers.list(all=True, filters={"label": f"{LABEL}={cluster}"}))


def _keypair(cluster: str) -> Path:
    """The cluster's own ed25519 login key (made once, kept until `cluster down`)."""
    key = paths.state_dir() / cluster / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"swiftfleet-{cluster}", "-f", str(key)],
            check=True,
        )
    return key


def _network(client: docker.DockerClient, spec: LocalCluster) -> Network:
    name = network_name(spec.name)
    for network in client.networks.list(filters={"label": f"{LABEL}={spec.name}"}):
        subnets = [c.get("Subnet") for c in network.attrs["IPAM"]["Config"] or []]
        if subnets != [str(spec.subnet)]:
            raise SwiftfleetError(
                f"network {name} exists with subnet {subnets}, not {spec.subnet}: run `cluster down` first"
            )
        return network
    gateway = str(spec.subnet.network_address + 1)
    ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=str(spec.subnet), gateway=gateway)])
    try:
        return client.networks.create(name, driver="bridge", ipam=ipam, labels={LABEL: spec.name})
    except docker.errors.APIError as exc:
        raise SwiftfleetError(f"cannot create network {name} on {spec.subnet}: {exc.explanation}") from None


def _bridge(network: Network) -> str:
    return f"br-{network.id[:12]}" if network.id else ""


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("iptables") is None:
        raise SwiftfleetError("iptables is not installed: run `make apt-deps`")
    return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True, check=False)


def _allow_forwarding(cluster: str, bridge: str) -> None:
    """Docker sets the FORWARD policy to DROP; let node-to-node traffic through even where Docker's own
    per-bridge rules are off (iptables or icc disabled). DOCKER-USER is the chain Docker leaves to users."""
    rule = ["-i", bridge, "-o", bridge, "-m", "comment", "--comment", f"swiftfleet-{cluster}", "-j", "ACCEPT"]
    if _iptables("-C", "DOCKER-USER", *rule).returncode != 0:
        proc = _iptables("-I", "DOCKER-USER", *rule)
        if proc.returncode != 0:
            raise SwiftfleetError(
                f"iptables: cannot add the forwarding rule for {bridge}: {proc.stderr.strip()}"
            )


def _drop_forwarding(cluster: str) -> None:
    """Delete every rule tagged with the cluster, found by its comment (the bridge may be gone already)."""
    listing = _iptables("-S", "DOCKER-USER").stdout.splitlines()
    for line in listing:
        if f"--comment swiftfleet-{cluster} " in line + " " and line.startswith("-A "):
            _iptables("-D", *line.split()[1:])


def _container(
    client: docker.DockerClient, spec: LocalCluster, rank: int, ip: ipaddress.IPv4Address
) -> Container:
    name = container_name(spec.name, rank)
    try:
        container = _settled(client.containers.get(name))
    except docker.errors.NotFound:
        progress(f"starting {name} at {ip}")
        volumes = {
            "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "ro"},
            str(CACHE_DIR): {"bind": str(CACHE_DIR), "mode": "rw"},
        }
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        if WHEELS.is_dir():
            volumes[str(WHEELS)] = {"bind": str(WHEELS), "mode": "ro"}
        net = network_name(spec.name)
        # systemd as PID 1 without privileges: the host's cgroup tree read-only, /run and /run/lock on tmpfs.
        container = client.containers.create(
            spec.image, ["/lib/systemd/systemd"], name=name, hostname=f"{spec.name}-node{rank}",
            cgroupns="host", tmpfs={"/run": "", "/run/lock": ""}, volumes=volumes, stop_signal="SIGRTMIN+3",
            labels={LABEL: spec.name, RANK_LABEL: str(rank)}, network=net,
            networking_config={net: client.api.create_endpoint_config(ipv4_address=str(ip))},
        )  # fmt: skip
    if container.status != "running":
        try:
            container.start()
        except docker.errors.APIError as exc:
            raise SwiftfleetError(f"{name}: Docker cannot start it: {exc.explanation}") from None
    return container


def _settled(container: Container) -> Container:
    """The container, once Docker has finished removing a lost one (`docker rm -f` may return while the removal
    goes on); docker.errors.NotFound when it is gone, so that a new one is made in its place."""
    deadline = time.monotonic() + REMOVAL_TIMEOUT
    if container.status == "dead":  # a removal that failed half-way: finish it
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True, v=True)
    while container.status in ("removing", "dead"):
        if time.monotonic() > deadline:
            raise SwiftfleetError(
                f"{container.name}: Docker is still removing it after {REMOVAL_TIMEOUT:.0f} s"
            )
        progress(f"waiting for Docker to finish removing {container.name}")
        time.sleep(1)
        container.reload()  # raises NotFound once it is gone
    return container


def _prepare(container: Container, public_key: str) -> list[str]:
    """Wait for sshd in the node, authorize the cluster key for root, return the node's public host keys."""
    deadline = time.monotonic() + BOOT_TIMEOUT
    while True:
        result = container.exec_run(
            ["sh", "-c", "systemctl is-active --quiet ssh && cat /etc/ssh/ssh_host_*_key.pub"]
        )
        if result.exit_code == 0:
            break
        if time.monotonic() > deadline:
            raise SwiftfleetError(f"{container.name}: sshd did not start within {BOOT_TIMEOUT:.0f} s")
        time.sleep(0.3)
    install = 'umask 077 && mkdir -p /root/.ssh && printf "%s\\n" "$KEY" > /root/.ssh/authorized_keys'
    done = container.exec_run(["sh", "-c", install], environment={"KEY": public_key.strip()})
    if done.exit_code != 0:
        raise SwiftfleetError(
            f"{container.name}: cannot install the login key: {done.output.decode().strip()}"
        )
    return list(result.output.decode().splitlines())
