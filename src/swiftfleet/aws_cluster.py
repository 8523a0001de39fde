"""`cluster up|down` for `provider: aws`: preflight, estimate, Terraform apply with AZ failover, inventory.

A cluster lives in one availability zone. When a zone has no capacity for the type, whatever that attempt
created is destroyed before the next zone is tried, so a failed `up` never leaves half a cluster billing.
"""

import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from swiftfleet import hostkeys, node_jobs, preflight, pricing, tf
from swiftfleet.errors import SwiftfleetError
from swiftfleet.inventory import Cluster, Node, SharedFs, remove_inventory, write_inventory
from swiftfleet.settings import AwsCluster

# EC2 error codes that mean "not here, maybe elsewhere" (for a targeted reservation: "not in it now"); matched as
# the SDK prints them ("api error <Code>:").
CAPACITY_ERROR = re.compile(
    r"api error (InsufficientInstanceCapacity|InsufficientCapacity|InsufficientHostCapacity|Unsupported"
    r"|ReservationCapacityExceeded)\b"
)
# cloud-init prints the host keys on the console at first boot; EC2 posts it a little after the instance runs.
HOST_KEYS_BLOCK = re.compile(r"-----BEGIN SSH HOST KEY KEYS-----(.*?)-----END SSH HOST KEY KEYS-----", re.S)
PUBLIC_KEY = re.compile(r"((?:ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/]+=*)")
# Terraform's message when another process holds the workspace's state lock.
STATE_LOCKED = "Error acquiring the state lock"
CONSOLE_WAIT_S = 300
CONSOLE_POLL_S = 10
CONSOLE_SAY_S = 30  # a progress line this often while waiting


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
        "capacity_reservation_id": spec.capacity_reservation_id,
        "capacity_block": spec.capacity_block,
        "shared_fs": spec.shared_fs,
    }


def zone_in_state(resources: list[dict[str, Any]]) -> str | None:
    """The zone a workspace's resources lie in (the subnet data source is read first, so even a partial
    state knows it); None for an empty workspace."""
    for r in resources:
        zone = r.get("values", {}).get("availability_zone")
        if zone:
            return str(zone)
    return None


def up(spec: AwsCluster, assume_yes: bool, force: bool = False) -> Cluster:
    """Create the cluster, or bring a running one to the cluster file after showing what that changes.
    The caller holds the cluster's lock (swiftfleet.lock), so what is read here stays true until the apply."""
    clients = preflight.Clients.for_region(spec.region)
    report = preflight.check(spec, clients)
    ws = tf.Workspace(spec.name)
    ws.init()
    existing = None
    if ws.exists():
        ws.select()
        resources = ws.resources()
        existing = zone_in_state(resources) if any(r.get("mode") == "managed" for r in resources) else None
    if existing:
        # A cluster that exists already is updated where it is: moving it would replace every node.
        _update(ws, spec, existing, assume_yes, force, clients.ec2)
        zone = existing
    else:
        for line in pricing.estimate(spec, report.zones[0], clients.ec2).lines():
            click.echo(line)
        if not assume_yes:
            click.confirm(
                f"Create cluster {spec.name!r} ({spec.node_count} x {spec.instance_type})?", abort=True
            )
        ws.select()  # created here on first use, once the user has said yes
        zone = _create(ws, spec, report.zones)
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


def _update(ws: tf.Workspace, spec: AwsCluster, zone: str, assume_yes: bool, force: bool, ec2: Any) -> None:
    """Show what Terraform would change on the running cluster, ask (naming the nodes it would replace, and
    refusing while a job runs on them unless forced), then apply exactly the plan that was shown."""
    with tempfile.TemporaryDirectory(prefix="swiftfleet-plan-") as tmp:
        plan_file = Path(tmp) / "up.tfplan"
        changes = ws.plan(variables(spec, zone), plan_file)
        if not changes:
            say(f"cluster {spec.name!r} in {zone} already matches the cluster file: nothing to change")
            return
        say(f"cluster {spec.name!r} runs in {zone}; bringing it to the cluster file would:")
        for change in changes:
            say(f"  {change}")
        lost = replaced_ranks(changes)
        if lost:
            node_jobs.guard_ranks(spec.name, lost, "`cluster up` replaces {nodes}", force)
        for line in pricing.estimate(spec, zone, ec2).lines():
            click.echo(line)
        if not assume_yes:
            counts = Counter(c.verb for c in changes)
            summary = ", ".join(f"{n} to {verb}" for verb, n in sorted(counts.items()))
            click.confirm(
                f"Change running cluster {spec.name!r} ({summary}){loss_warning(spec.name, changes)}?",
                abort=True,
            )
        before = ws.managed()
        try:
            ws.apply_plan(plan_file, progress=_reporter(zone))
        except tf.Interrupted:
            raise _interrupted(spec, zone) from None
        except tf.TerraformError as exc:
            _remove_new(ws, spec, zone, before, exc)
            raise SwiftfleetError(
                f"{exc} -- the cluster in {zone} keeps what it had (`cluster status` shows it; "
                "`cluster down` removes it)"
            ) from None


def replaced_ranks(changes: list[tf.Change]) -> list[int]:
    return sorted({c.index for c in changes if c.type == "aws_instance" and "delete" in c.actions})


def loss_warning(cluster: str, changes: list[tf.Change]) -> str:
    """What the confirmation names that a re-up would lose: replaced nodes' disks, the shared file system."""
    lost = replaced_ranks(changes)
    parts = (
        [f"this REPLACES {', '.join(f'{cluster}-node{rank}' for rank in lost)} (their disks are lost)"]
        if lost
        else []
    )
    if any(c.type == "aws_efs_file_system" and "delete" in c.actions for c in changes):
        parts.append(
            "this DELETES the shared file system and everything on it (then `make setup` unmounts it)"
        )
    return "".join(f"; {p}" for p in parts)


def _create(ws: tf.Workspace, spec: AwsCluster, zones: list[str]) -> str:
    """Apply in the first zone that has capacity and return it; on any failure nothing this attempt made stays."""
    for attempt, zone in enumerate(zones, 1):
        say(f"applying in {zone} (zone {attempt} of {len(zones)}): {spec.node_count} x {spec.instance_type}")
        before = ws.managed()
        try:
            ws.apply(variables(spec, zone), progress=_reporter(zone))
            return zone
        except tf.Interrupted:
            raise _interrupted(spec, zone) from None
        except tf.TerraformError as exc:
            capacity = any(CAPACITY_ERROR.search(e) for e in exc.errors)
            say(f"{zone}: {'no capacity' if capacity else 'apply failed'}")
            _remove_new(ws, spec, zone, before, exc)
            if not capacity:
                raise
    instead = (
        f"Check capacity reservation {spec.capacity_reservation_id} (`aws ec2 describe-capacity-reservations`) "
        "or try later"
        if spec.capacity_reservation_id
        else "Try other availability_zones, another instance type or later"
    )
    raise SwiftfleetError(
        f"no capacity for {spec.node_count} x {spec.instance_type} in {', '.join(zones)}; nothing was left "
        f"running. {instead}"
    )


def _reporter(zone: str) -> Callable[[str], None]:
    return lambda message: say(f"[{zone}] {message}")


def _interrupted(spec: AwsCluster, zone: str) -> SwiftfleetError:
    return SwiftfleetError(
        f"interrupted in {zone}: Terraform finished what it had started and saved its state, so nodes of "
        f"{spec.name!r} may exist and bill: `swiftfleet cluster status` shows them, `cluster up` completes the "
        "cluster, `cluster down` removes it"
    )


def _remove_new(
    ws: tf.Workspace, spec: AwsCluster, zone: str, before: set[str], cause: tf.TerraformError
) -> None:
    """Destroy what a failed apply created (in the state now, not before it), never what was there already.
    After a state-lock failure nothing is destroyed: the state then belongs to whoever holds that lock."""
    if any(STATE_LOCKED in e for e in cause.errors):
        return
    created = sorted(ws.managed() - before)
    if not created:
        say(f"{zone}: the failed attempt created nothing")
        return
    say(f"{zone}: destroying the {len(created)} resource(s) this attempt created")
    try:
        ws.destroy(variables(spec, zone), progress=_reporter(zone), targets=created)
    except tf.Interrupted:
        raise _interrupted(spec, zone) from None
    except tf.TerraformError as exc:
        raise SwiftfleetError(
            f"{cause}; removing what it created then failed too ({exc}): resources may still be billing, "
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
    return Cluster(
        name=spec.name,
        provider="aws",
        nodes=nodes,
        deploy_port=spec.deploy_port,
        idle_stop_minutes=spec.idle_stop_minutes,
        spot=spec.spot,
        shared_fs=_shared_fs(outputs.get("shared_fs")),
    ), known_hosts


def _shared_fs(output: dict[str, Any] | None) -> SharedFs | None:
    """The module's shared_fs output (null without one) as the inventory carries it: what the nodes mount."""
    if output is None:
        return None
    return SharedFs(type=output["type"], address=output["address"])


def console_host_keys(console: str) -> list[str]:
    """Public keys from the last host-key block cloud-init printed on the console (a reboot prints it again)."""
    blocks = HOST_KEYS_BLOCK.findall(console)
    return PUBLIC_KEY.findall(blocks[-1]) if blocks else []


def _host_keys(ec2: Any, node: Node, deadline: float) -> list[str]:
    """known_hosts lines for the node: from its console (vouched for by the EC2 API) while the shared wait
    lasts, else from ssh-keyscan (trust on first use; the fingerprints are printed to compare)."""
    waited = 0
    while True:
        console = ec2.get_console_output(InstanceId=node.instance_id, Latest=True).get("Output") or ""
        keys = console_host_keys(console)
        if keys:
            lines = hostkeys.known_hosts_lines(node.ansible_host, node.ssh_port, keys)
            hostkeys.announce(node.name, lines, "EC2 console output")
            return lines
        if time.monotonic() >= deadline:
            break
        if waited % CONSOLE_SAY_S == 0:
            say(
                f"{node.name}: waiting for its host keys on the EC2 console (first boot; at most {CONSOLE_WAIT_S} s)"
            )
        time.sleep(CONSOLE_POLL_S)
        waited += CONSOLE_POLL_S
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
