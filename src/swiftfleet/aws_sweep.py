"""The cloud as the source of truth for `cluster down` and `cluster status`: what AWS holds under a cluster's tag.

Terraform destroys only what its state records. An instance whose RunInstances reply was lost, a workspace
deleted or lost with a laptop, or anything made by hand for the cluster would go on billing unseen; every such
thing still carries the tag `swiftfleet:cluster=<name>` (the provider's default_tags put it on all the module
makes). So `down` sweeps by the tag after Terraform and then audits, and `status` asks EC2, not the inventory.
"""

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from swiftfleet.errors import SwiftfleetError
from swiftfleet.inventory import inventory_path, read_inventory
from swiftfleet.preflight import Clients, aws_error
from swiftfleet.settings import AwsCluster
from swiftfleet.table import render

TAG = "swiftfleet:cluster"
LIVE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]
GONE_STATES = {"shutting-down", "terminated"}
# Termination of a GPU instance usually takes one to three minutes; past this, say so and go on.
TERMINATE_WAIT = {"Delay": 5, "MaxAttempts": 60}
# AWS frees a terminated instance's volumes, interfaces and group memberships a little after it reports
# "terminated", and deletes an EFS mount target (and with it its interface) a little after it accepted the
# delete: deletes refused for that reason are retried this long, from the last such request.
SETTLE_S = 90
SETTLE_POLL_S = 5
RETRY_CODES = {
    "DependencyViolation",
    "VolumeInUse",
    "InvalidNetworkInterface.InUse",
    "InvalidIPAddress.InUse",
    "FileSystemInUse",  # an EFS file system whose mount targets are still being deleted
}
# EFS lists a deleted file system as "deleting" for a short while, then "deleted" or not at all.
EFS_GONE_STATES = {"deleted"}
# EC2 writes when an instance stopped or terminated into StateTransitionReason: "User initiated (2026-... GMT)".
TRANSITION_TIME = re.compile(r"\((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (?:GMT|UTC)\)")


@dataclass(frozen=True)
class Leftover:
    """One resource in AWS that still carries the cluster's tag."""

    kind: str  # instance, volume, network interface, elastic IP, EFS file system, security group, ...
    id: str
    name: str = ""
    detail: str = ""  # the state, or what the thing belongs to
    attached_to: str = ""  # the instance a volume or network interface is attached to

    def __str__(self) -> str:
        return f"{self.kind} {self.id}" + (f" ({self.name})" if self.name and self.name != self.id else "")


@dataclass(frozen=True)
class NodeState:
    """One instance of the cluster as EC2 sees it now."""

    name: str
    rank: int | None
    instance_id: str
    state: str
    lifecycle: str  # spot | on-demand
    launched: datetime
    ttl_left: timedelta | None  # launch time + ttl_hours - now; None once the instance is gone
    private_ip: str | None
    public_ip: str | None
    ended: datetime | None = None  # when it stopped or terminated, as EC2 reports it
    reason: str = ""  # EC2's StateReason code: a user, the in-guest shutdown of the TTL, or a spot reclaim


def tags_of(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


def _tag_filter(cluster: str) -> list[dict[str, Any]]:
    return [{"Name": f"tag:{TAG}", "Values": [cluster]}]


def _paged(client: Any, operation: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    return [item for page in client.get_paginator(operation).paginate(**kwargs) for item in page[key]]


def cluster_instances(ec2: Any, cluster: str, states: list[str] | None = None) -> list[dict[str, Any]]:
    filters = _tag_filter(cluster)
    if states:
        filters.append({"Name": "instance-state-name", "Values": states})
    reservations = _paged(ec2, "describe_instances", "Reservations", Filters=filters)
    return [i for r in reservations for i in r["Instances"]]


def iam_name(cluster: str, region: str) -> str:
    """The one name the module gives the node role and its profile (terraform/iam.tf: IAM names are global to
    the account, so the region in the name keeps a same-named cluster of another region apart)."""
    return f"swiftfleet-{cluster}-{region}-node"


def _iam_leftovers(iam: Any, cluster: str, region: str) -> list[Leftover]:
    """IAM is global and tags do not say the region: the kit's role and profile are found by the exact name
    Terraform gives them, and taken only if tagged with this cluster. The tag lookup needs extra calls
    (ListRoles and ListInstanceProfiles return no tags); where it is not served (moto has no
    ListInstanceProfileTags), the name alone decides."""
    name = iam_name(cluster, region)
    found = []
    try:
        iam.get_role(RoleName=name)
        tags = iam.list_role_tags(RoleName=name)["Tags"]
        if tags_of({"Tags": tags}).get(TAG) == cluster:
            found.append(Leftover("IAM role", name, name, "global"))
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchEntity":
            raise
    try:
        profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchEntity":
            raise
        return found
    tags = profile.get("Tags")
    if tags is None:
        try:
            tags = iam.list_instance_profile_tags(InstanceProfileName=name)["Tags"]
        except (ClientError, BotoCoreError):
            tags = [{"Key": TAG, "Value": cluster}]  # not listable: the name decides
    if tags_of({"Tags": tags}).get(TAG) == cluster:
        roles = ", ".join(r["RoleName"] for r in profile.get("Roles", [])) or "no role"
        found.append(Leftover("instance profile", name, name, roles))
    return found


def _efs_leftovers(efs: Any, cluster: str) -> list[Leftover]:
    """EFS cannot filter by tag: every file system of the region is listed (its tags come with it)."""
    return [
        Leftover("EFS file system", f["FileSystemId"], tags_of(f).get("Name", ""), f["LifeCycleState"])
        for f in _paged(efs, "describe_file_systems", "FileSystems")
        if tags_of(f).get(TAG) == cluster and f["LifeCycleState"] not in EFS_GONE_STATES
    ]


def _scan(clients: Clients, cluster: str) -> tuple[list[Leftover], list[str]]:
    """Everything tagged with the cluster in the client's region, plus a line for each kind that could not be
    listed (no permission, say): what the sweep cannot see it cannot vouch for."""
    ec2, region = clients.ec2, clients.ec2.meta.region_name
    tagged = _tag_filter(cluster)
    listers: list[tuple[str, Callable[[], list[Leftover]]]] = [
        (
            "instances",
            lambda: [
                Leftover("instance", i["InstanceId"], tags_of(i).get("Name", ""), i["State"]["Name"])
                for i in cluster_instances(ec2, cluster, LIVE_STATES)
            ],
        ),
        (
            "elastic IPs",
            lambda: [
                Leftover(
                    "elastic IP",
                    a["AllocationId"],
                    a.get("PublicIp", ""),
                    a.get("NetworkInterfaceId", ""),
                    a.get("InstanceId", ""),
                )
                for a in ec2.describe_addresses(Filters=tagged)["Addresses"]
            ],
        ),
        (
            "network interfaces",
            lambda: [
                Leftover(
                    "network interface",
                    n["NetworkInterfaceId"],
                    tags_of(n).get("Name", ""),
                    n["Status"],
                    (n.get("Attachment") or {}).get("InstanceId", ""),
                )
                for n in _paged(ec2, "describe_network_interfaces", "NetworkInterfaces", Filters=tagged)
            ],
        ),
        (
            "volumes",
            lambda: [
                Leftover(
                    "volume",
                    v["VolumeId"],
                    tags_of(v).get("Name", ""),
                    v["State"],
                    next((a["InstanceId"] for a in v.get("Attachments", [])), ""),
                )
                for v in _paged(ec2, "describe_volumes", "Volumes", Filters=tagged)
            ],
        ),
        ("EFS file systems", lambda: _efs_leftovers(clients.efs, cluster)),
        (
            "security groups",
            lambda: [
                Leftover("security group", g["GroupId"], g["GroupName"], g.get("VpcId", ""))
                for g in _paged(ec2, "describe_security_groups", "SecurityGroups", Filters=tagged)
            ],
        ),
        (
            "key pairs",
            lambda: [
                Leftover("key pair", k["KeyPairId"], k["KeyName"])
                for k in ec2.describe_key_pairs(Filters=tagged)["KeyPairs"]
            ],
        ),
        ("IAM roles and instance profiles", lambda: _iam_leftovers(clients.iam, cluster, region)),
    ]
    found: list[Leftover] = []
    problems = []
    for what, lister in listers:
        try:
            found += lister()
        except (ClientError, BotoCoreError) as exc:
            problems.append(f"could not list {what} tagged {TAG}={cluster} in {region}: {aws_error(exc)}")
    return found, problems


def find(clients: Clients, cluster: str) -> list[Leftover]:
    """Everything in the region (and the cluster's IAM role and profile) still tagged with the cluster; live
    instances only, since EC2 lists terminated ones for a while and they no longer bill."""
    found, problems = _scan(clients, cluster)
    if problems:
        raise SwiftfleetError(f"{problems[0]}: resources of the cluster may still be billing")
    return found


class _Sweep:
    """The removal of one cluster's leftovers, writing one line per outcome."""

    def __init__(self, clients: Clients) -> None:
        self.ec2, self.iam, self.efs = clients.ec2, clients.iam, clients.efs
        self.lines: list[str] = []
        self.terminated: set[str] = set()
        self.unmounted: set[str] = set()  # EFS mount targets this sweep asked AWS to delete
        self.deadline = 0.0

    def settle_from_now(self) -> None:
        """Something was just asked to let go of what later deletes need: retry those until SETTLE_S from now."""
        self.deadline = max(self.deadline, time.monotonic() + SETTLE_S)

    def attempt(self, done: str, thing: Leftover, *calls: Callable[[], object], settle: bool = False) -> bool:
        """Run the calls in order; with `settle`, a refusal that AWS lifts once a terminated instance (or a
        deleted EFS mount target) is released is retried until the deadline. Success or AWS's reason becomes a
        line, never an exception."""
        for call in calls:
            while True:
                try:
                    call()
                    break
                except ClientError as exc:
                    code = exc.response["Error"]["Code"]
                    if settle and code in RETRY_CODES and time.monotonic() < self.deadline:
                        time.sleep(SETTLE_POLL_S)
                        continue
                    self.lines.append(f"could not remove {thing}: {aws_error(exc)}")
                    return False
                except BotoCoreError as exc:
                    self.lines.append(f"could not remove {thing}: {aws_error(exc)}")
                    return False
        self.lines.append(f"{done} {thing}")
        return True

    def instances(self, found: list[Leftover]) -> None:
        """Terminate, then wait: volumes, interfaces and the security group stay in use until they are gone."""
        asked = [
            i.id
            for i in found
            if self.attempt("terminating", i, partial(self.ec2.terminate_instances, InstanceIds=[i.id]))
        ]
        if not asked:
            return
        try:
            self.ec2.get_waiter("instance_terminated").wait(InstanceIds=asked, WaiterConfig=TERMINATE_WAIT)
            self.lines.append(f"terminated {', '.join(asked)}")
        except (ClientError, BotoCoreError) as exc:
            waited = TERMINATE_WAIT["Delay"] * TERMINATE_WAIT["MaxAttempts"]
            self.lines.append(
                f"could not confirm within {waited} s that {', '.join(asked)} terminated: {aws_error(exc)}"
            )
        self.terminated.update(asked)
        self.settle_from_now()

    def released(self, thing: Leftover) -> bool:
        """Attached to nothing, or to an instance this sweep terminated: AWS will let go of it shortly."""
        return thing.attached_to == "" or thing.attached_to in self.terminated

    def elastic_ip(self, eip: Leftover) -> None:
        """Read again: AWS disassociates an address from an instance that terminated."""
        try:
            (address,) = self.ec2.describe_addresses(AllocationIds=[eip.id])["Addresses"]
        except (ClientError, BotoCoreError, ValueError) as exc:
            self.lines.append(f"could not read {eip}: {aws_error(exc)}")
            return
        calls: list[Callable[[], object]] = []
        if address.get("AssociationId"):
            calls.append(partial(self.ec2.disassociate_address, AssociationId=address["AssociationId"]))
        calls.append(partial(self.ec2.release_address, AllocationId=eip.id))
        self.attempt("released", eip, *calls, settle=self.released(eip))

    def security_groups(self, groups: list[Leftover]) -> None:
        """Rules first: two groups of the cluster that refer to each other can be deleted in no order."""
        for sg in groups:
            try:
                (group,) = self.ec2.describe_security_groups(GroupIds=[sg.id])["SecurityGroups"]
            except (ClientError, BotoCoreError, ValueError) as exc:
                self.lines.append(f"could not read the rules of {sg}: {aws_error(exc)}")
                continue
            for key, rules, revoke in (
                ("IpPermissions", "inbound", self.ec2.revoke_security_group_ingress),
                ("IpPermissionsEgress", "outbound", self.ec2.revoke_security_group_egress),
            ):
                if group.get(key):
                    call = partial(revoke, GroupId=sg.id, IpPermissions=group[key])
                    self.attempt(f"revoked the {rules} rules of", sg, call)
        for sg in groups:
            call = partial(self.ec2.delete_security_group, GroupId=sg.id)
            self.attempt("deleted", sg, call, settle=bool(self.terminated or self.unmounted))

    def file_system(self, fs: Leftover) -> None:
        """Mount targets first: AWS refuses to delete a file system that has any, and deletes them (and their
        interfaces, which are in the cluster's security group) asynchronously, so the file system's delete is
        retried while AWS still counts them. Its own delete is asynchronous too: wait until it is gone, or the
        audit right after would find it "deleting"."""
        if fs.detail != "deleting":
            try:
                targets = _paged(self.efs, "describe_mount_targets", "MountTargets", FileSystemId=fs.id)
            except (ClientError, BotoCoreError) as exc:
                self.lines.append(f"could not list the mount targets of {fs}: {aws_error(exc)}")
                return
            removed = [
                self.attempt(
                    "deleted",
                    Leftover("EFS mount target", t["MountTargetId"], f"of {fs.id}"),
                    partial(self.efs.delete_mount_target, MountTargetId=t["MountTargetId"]),
                )
                for t in targets
                if t["LifeCycleState"] not in ("deleting", "deleted")
            ]
            if targets:
                self.unmounted.update(t["MountTargetId"] for t in targets)
                self.settle_from_now()
            # A mount target that could not be deleted keeps the file system: one try, for AWS's reason.
            call = partial(self.efs.delete_file_system, FileSystemId=fs.id)
            if not self.attempt("deleted", fs, call, settle=bool(targets) and all(removed)):
                return
        else:
            self.lines.append(f"{fs} was already being deleted")
        self.wait_gone(fs)

    def wait_gone(self, fs: Leftover) -> None:
        until = time.monotonic() + SETTLE_S
        while True:
            try:
                listed = self.efs.describe_file_systems(FileSystemId=fs.id)["FileSystems"]
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "FileSystemNotFound":
                    return
                self.lines.append(f"could not confirm that {fs} is gone: {aws_error(exc)}")
                return
            except BotoCoreError as exc:
                self.lines.append(f"could not confirm that {fs} is gone: {aws_error(exc)}")
                return
            state = next((f["LifeCycleState"] for f in listed), "deleted")
            if state in EFS_GONE_STATES:
                return
            if time.monotonic() >= until:
                self.lines.append(f"{fs} is still {state} {SETTLE_S} s after its delete")
                return
            time.sleep(SETTLE_POLL_S)

    def instance_profile(self, profile: Leftover) -> None:
        try:
            roles = self.iam.get_instance_profile(InstanceProfileName=profile.id)["InstanceProfile"]["Roles"]
        except (ClientError, BotoCoreError) as exc:
            self.lines.append(f"could not read {profile}: {aws_error(exc)}")
            return
        calls: list[Callable[[], object]] = [
            partial(
                self.iam.remove_role_from_instance_profile,
                InstanceProfileName=profile.id,
                RoleName=r["RoleName"],
            )
            for r in roles
        ]
        calls.append(partial(self.iam.delete_instance_profile, InstanceProfileName=profile.id))
        self.attempt("deleted", profile, *calls)

    def role(self, role: Leftover) -> None:
        """Managed policies detached, inline ones deleted, then the role. A profile that is not the cluster's
        keeps the role, and the delete says so (DeleteConflict)."""
        try:
            attached = _paged(self.iam, "list_attached_role_policies", "AttachedPolicies", RoleName=role.id)
            inline = _paged(self.iam, "list_role_policies", "PolicyNames", RoleName=role.id)
        except (ClientError, BotoCoreError) as exc:
            self.lines.append(f"could not list the policies of {role}: {aws_error(exc)}")
            return
        calls: list[Callable[[], object]] = [
            partial(self.iam.detach_role_policy, RoleName=role.id, PolicyArn=p["PolicyArn"]) for p in attached
        ]
        calls += [partial(self.iam.delete_role_policy, RoleName=role.id, PolicyName=name) for name in inline]
        calls.append(partial(self.iam.delete_role, RoleName=role.id))
        self.attempt("deleted", role, *calls)


def sweep(clients: Clients, cluster: str) -> list[str]:
    """Remove everything still tagged with the cluster, in dependency order; one line per thing removed and
    one per thing left, with AWS's reason. Never raises for an AWS refusal: the audit after it decides."""
    found, problems = _scan(clients, cluster)
    run = _Sweep(clients)
    run.lines += problems

    def of(kind: str) -> list[Leftover]:
        return [f for f in found if f.kind == kind]

    run.instances(of("instance"))
    for eip in of("elastic IP"):
        run.elastic_ip(eip)
    for eni in of("network interface"):
        call = partial(run.ec2.delete_network_interface, NetworkInterfaceId=eni.id)
        run.attempt("deleted", eni, call, settle=run.released(eni))
    for vol in of("volume"):
        run.attempt("deleted", vol, partial(run.ec2.delete_volume, VolumeId=vol.id), settle=run.released(vol))
    for fs in of("EFS file system"):  # before the groups: its mount targets' interfaces are in one
        run.file_system(fs)
    run.security_groups(of("security group"))
    for key in of("key pair"):
        # By name: moto answers a delete by KeyPairId with success and keeps the key.
        run.attempt("deleted", key, partial(run.ec2.delete_key_pair, KeyName=key.name))
    for profile in of("instance profile"):
        run.instance_profile(profile)
    for role in of("IAM role"):
        run.role(role)
    return run.lines


def _ended(instance: dict[str, Any]) -> datetime | None:
    match = TRANSITION_TIME.search(instance.get("StateTransitionReason") or "")
    return datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC) if match else None


def nodes(clients: Clients, cluster: str, ttl_hours: int) -> list[NodeState]:
    """Every instance tagged with the cluster, terminated ones too (EC2 lists them for about an hour), by rank.
    The TTL left is reckoned from the launch time; a TTL extended on the node itself is not seen here."""
    now = datetime.now(UTC)
    states = []
    for i in cluster_instances(clients.ec2, cluster):
        tags, state = tags_of(i), i["State"]["Name"]
        rank = tags.get("swiftfleet:rank", "")
        launched = i["LaunchTime"]
        states.append(
            NodeState(
                name=tags.get("Name", i["InstanceId"]),
                rank=int(rank) if rank.isdigit() else None,
                instance_id=i["InstanceId"],
                state=state,
                lifecycle="spot" if i.get("InstanceLifecycle") == "spot" else "on-demand",
                launched=launched,
                ttl_left=None if state in GONE_STATES else launched + timedelta(hours=ttl_hours) - now,
                private_ip=i.get("PrivateIpAddress"),
                public_ip=i.get("PublicIpAddress"),
                ended=_ended(i) if state in GONE_STATES | {"stopped"} else None,
                reason=(i.get("StateReason") or {}).get("Code", ""),
            )
        )
    return sorted(states, key=lambda n: (n.rank is None, n.rank or 0, n.launched))


def _when(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _ttl(left: timedelta | None) -> str:
    if left is None:
        return "-"
    if left <= timedelta(0):
        return "past due"
    minutes = int(left.total_seconds() // 60)
    return f"{minutes // 60}h {minutes % 60:02d}m"


def _gone_line(name: str, node: NodeState | None, instance_id: str | None) -> str:
    if node is None:
        what = f"instance {instance_id or '?'} is no longer listed by EC2 (terminated over an hour ago?)"
    else:
        when = f" at {_when(node.ended)}" if node.ended else ""
        cause = {
            "Client.InstanceInitiatedShutdown": "shut down from inside the node: the TTL or an idle stop",
            "Server.SpotInstanceTermination": "a spot reclaim",
            "Client.UserInitiatedShutdown": "through the EC2 API or console",
        }.get(node.reason, "the TTL or a spot reclaim?")
        what = f"{node.state}{when} ({cause})"
    return f"{name}: {what} -- `cluster up` replaces it"


def status(spec: AwsCluster) -> list[str]:
    """`cluster status` for aws: a table of what EC2 holds under the cluster's tag, then a line for each
    inventory node whose instance is gone. EC2 is asked even without an inventory, so strays show up."""
    inventory = read_inventory(spec.name) if inventory_path(spec.name).is_file() else None
    try:
        found = nodes(Clients.for_region(spec.region), spec.name, spec.ttl_hours)
    except (ClientError, BotoCoreError) as exc:
        raise SwiftfleetError(
            f"could not list the instances of cluster {spec.name!r}: {aws_error(exc)}"
        ) from None
    head = ["node", "rank", "instance", "state", "lifecycle", "launched", "TTL left", "ips"]
    rows = [
        [
            n.name,
            "-" if n.rank is None else n.rank,
            n.instance_id,
            n.state,
            n.lifecycle,
            _when(n.launched),
            _ttl(n.ttl_left),
            " / ".join(ip for ip in (n.private_ip, n.public_ip) if ip) or "-",
        ]
        for n in found
    ]
    lines = [render(head, rows)] if rows else []
    by_id = {n.instance_id: n for n in found}
    for node in inventory.nodes if inventory else []:
        seen = by_id.get(node.instance_id or "")
        if seen is None or seen.state in GONE_STATES:
            lines.append(_gone_line(node.name, seen, node.instance_id))
    live = sum(n.state not in GONE_STATES for n in found)
    where = f"cluster {spec.name!r} (aws, {spec.region}): {live} live instance(s) tagged {TAG}={spec.name}"
    if inventory is None:
        lines.append(f"{where}; no inventory (`cluster up` writes it)")
    else:
        lines.append(
            f"{where}; inventory: {len(inventory.nodes)} node(s), MASTER_ADDR={inventory.master_addr}"
        )
    return lines
