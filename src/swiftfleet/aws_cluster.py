"""`cluster up|down` for `provider: aws`: preflight, estimate, Terraform apply with AZ failover, inventory.

A cluster lives in one availability zone. When a zone has no capacity for the type, whatever that attempt
created is destroyed before the next zone is tried, so a failed `up` never leaves half a cluster billing.
"""

import re
import time
from collections.abc import Callable
from typing import Any

import click

from swiftfleet import hostkeys, preflight, pricing, tf
from swiftfleet.errors import SwiftfleetError
from swiftfleet.inventory import Cluster, Node, remove_inventory, write_inventory
from swiftfleet.settings import AwsCluster

# EC2 error codes that mean "not here, maybe elsewhere"; matched as the SDK prints them ("api error <Code>:").
CAPACITY_ERROR = re.compile(
    r"api error (InsufficientInstanceCapacity|InsufficientCapacity|InsufficientHostCapacity|Unsupported)\b"
)
# cloud-init prints the host keys on the console at first boot; EC2 posts it a little after the instance runs.
HOST_KEYS_BLOCK = re.compile(r"-----BEGIN SSH HOST KEY KEYS-----(.*?)-----END SSH HOST KEY KEYS-----", re.S)
PUBLIC_KEY = re.compile(r"((?:ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/]+=*)")
CONSOLE_WAIT_S = 300
CONSOLE_POLL_S = 10


def say(message: str) -> None:
    click.echo(f"swiftfleet: {message}", err=True)


def variables(spec: AwsCluster, zone: str) -> dict[str, Any]:
    """The module's inputs for one attempt in `zone`."""
    return {
        "cluster_name": spec.name,
        "region": spec.region,
        "instance_type": spec.instance_type,
        "node_count": spec.node_count,
        "availability_zone": zone,
        "subnet_id": spec.subnet_id,
        "admin_cidrs": [str(c) for c in spec.admin_cidrs],
        "allow_ssh_from_anywhere": spec.allow_ssh_from_anywhere,
        "client_cidrs": [str(c) for c in spec.client_cidrs],
        "deploy_port": spec.deploy_port,
        "public_key_file": str(spec.public_key_file),
        "ami_ssm_parameter": spec.ami_ssm_parameter,
        "ami_id": spec.ami_id,
        "spot": spec.spot,
        "ttl_hours": spec.ttl_hours,
        "root_volume_gib": spec.root_volume_gib,
        "placement_group": spec.placement_group,
        "ssh_user": spec.ssh_user,
        "s3_read": spec.s3_read,
        "s3_write": spec.s3_write,
        "instance_profile": spec.instance_profile,
    }


def zone_in_state(resources: list[dict[str, Any]]) -> str | None:
    """The zone a workspace's resources lie in (the subnet data source is read first, so even a partial
    state knows it); None for an empty workspace."""
    for r in resources:
        zone = r.get("values", {}).get("availability_zone")
        if zone:
            return str(zone)
    return None


def up(spec: AwsCluster, assume_yes: bool) -> Cluster:
    clients = preflight.Clients.for_region(spec.region)
    report = preflight.check(spec, clients)
    ws = tf.Workspace(spec.name)
    ws.init()
    existing = None
    if ws.exists():
        ws.select()
        resources = ws.resources()
        existing = zone_in_state(resources) if any(r.get("mode") == "managed" for r in resources) else None
    # A cluster that exists already is updated where it is: moving it would replace every node.
    zones = [existing] if existing else report.zones
    for line in pricing.estimate(spec, zones[0], clients.ec2).lines():
        click.echo(line)
    if not assume_yes:
        click.confirm(
            f"Create or update cluster {spec.name!r} ({spec.node_count} x {spec.instance_type})?", abort=True
        )
    ws.select()  # created here on first use, once the user has said yes
    zone = _apply(ws, spec, zones, existing is not None)
    outputs = ws.outputs()
    say(f"cluster {spec.name!r} is up in {zone}; pinning SSH host keys")
    try:
        cluster, known_hosts = _cluster(spec, outputs, clients.ec2)
    except SwiftfleetError as exc:
        raise SwiftfleetError(
            f"the nodes are up, but {exc}: run `cluster up` again to retry, or `cluster down` to remove them"
        ) from None
    write_inventory(cluster, known_hosts)
    return cluster


def _apply(ws: tf.Workspace, spec: AwsCluster, zones: list[str], existing: bool) -> str:
    """Apply in the first zone that has capacity and return it; on any failure nothing new stays behind."""
    for attempt, zone in enumerate(zones, 1):
        say(f"applying in {zone} (zone {attempt} of {len(zones)}): {spec.node_count} x {spec.instance_type}")
        try:
            ws.apply(variables(spec, zone), progress=_reporter(zone))
            return zone
        except tf.TerraformError as exc:
            if existing:
                raise SwiftfleetError(
                    f"{exc} -- the cluster that already ran in {zone} was left as it is "
                    "(`cluster down` removes it)"
                ) from None
            capacity = any(CAPACITY_ERROR.search(e) for e in exc.errors)
            say(
                f"{zone}: {'no capacity' if capacity else 'apply failed'}; destroying what this attempt created"
            )
            _destroy_attempt(ws, spec, zone, exc)
            if not capacity:
                raise
    raise SwiftfleetError(
        f"no capacity for {spec.node_count} x {spec.instance_type} in {', '.join(zones)}; nothing was left "
        "running. Try other availability_zones, another instance type or later"
    )


def _reporter(zone: str) -> Callable[[str], None]:
    return lambda message: say(f"[{zone}] {message}")


def _destroy_attempt(ws: tf.Workspace, spec: AwsCluster, zone: str, cause: tf.TerraformError) -> None:
    try:
        ws.destroy(variables(spec, zone))
    except tf.TerraformError as exc:
        raise SwiftfleetError(
            f"{cause}; removing the partial cluster then failed too ({exc}): resources may still be billing, "
            f"run `swiftfleet cluster down` for {spec.name!r}"
        ) from None


def _cluster(spec: AwsCluster, outputs: dict[str, Any], ec2: Any) -> tuple[Cluster, list[str]]:
    assert spec.private_key_file is not None  # settings fill it in
    nodes = [
        Node(
            name=n["name"],
            rank=n["rank"],
            ansible_host=n["public_ip"] or n["private_ip"],
            private_ip=n["private_ip"],
            ssh_user=n["ssh_user"],
            ssh_key=spec.private_key_file,
            gpu_count=outputs["gpu_count"],
            gpu_memory_gib=outputs["gpu_memory_mib"] / 1024,
            instance_type=spec.instance_type,
            instance_id=n["instance_id"],
            availability_zone=n["availability_zone"],
        )
        for n in outputs["nodes"]
    ]
    deadline = time.monotonic() + CONSOLE_WAIT_S
    known_hosts = [line for node in nodes for line in _host_keys(ec2, node, deadline)]
    return Cluster(name=spec.name, provider="aws", nodes=nodes, deploy_port=spec.deploy_port), known_hosts


def console_host_keys(console: str) -> list[str]:
    """Public keys from the last host-key block cloud-init printed on the console (a reboot prints it again)."""
    blocks = HOST_KEYS_BLOCK.findall(console)
    return PUBLIC_KEY.findall(blocks[-1]) if blocks else []


def _host_keys(ec2: Any, node: Node, deadline: float) -> list[str]:
    """known_hosts lines for the node: from its console (vouched for by the EC2 API) while the shared wait
    lasts, else from ssh-keyscan (trust on first use; the fingerprints are printed to compare)."""
    while True:
        console = ec2.get_console_output(InstanceId=node.instance_id, Latest=True).get("Output") or ""
        keys = console_host_keys(console)
        if keys:
            lines = hostkeys.known_hosts_lines(node.ansible_host, node.ssh_port, keys)
            hostkeys.announce(node.name, lines, "EC2 console output")
            return lines
        if time.monotonic() >= deadline:
            break
        time.sleep(CONSOLE_POLL_S)
    say(
        f"{node.name}: no host keys on the EC2 console after {CONSOLE_WAIT_S} s; scanning {node.ansible_host}"
    )
    hostkeys.wait_for_ssh(node.ansible_host, node.ssh_port, timeout=120)
    lines = hostkeys.scan(node.ansible_host, node.ssh_port)
    hostkeys.announce(node.name, lines, "ssh-keyscan: compare with the EC2 console")
    return lines


def down(spec: AwsCluster) -> None:
    ws = tf.Workspace(spec.name)
    ws.init()
    if ws.exists():
        ws.select()
        resources = ws.resources()
        zone = zone_in_state(resources)
        if zone:
            say(f"destroying cluster {spec.name!r} in {zone}")
            ws.destroy(variables(spec, zone))
        ws.delete()
    else:
        say(f"no Terraform workspace for cluster {spec.name!r}: nothing to destroy")
    remove_inventory(spec.name)
    # Terraform removes only what its state records; AWS still knows everything else by the cluster's tag.
    from swiftfleet import aws_sweep

    clients = preflight.Clients.for_region(spec.region)
    swept = aws_sweep.sweep(clients, spec.name)
    for line in swept or [f"sweep: nothing else tagged {aws_sweep.TAG}={spec.name} in {spec.region}"]:
        say(line)
    left = aws_sweep.find(clients, spec.name)
    if left:
        raise SwiftfleetError(
            f"still in {spec.region} after `cluster down`, and possibly billing: {', '.join(map(str, left))} "
            "(the lines above say why; remove them, then run `cluster down` again)"
        )
    say(f"audit: nothing tagged {aws_sweep.TAG}={spec.name} is left in {spec.region}")
