"""`cluster down` sweeps what AWS holds under the cluster's tag and audits; `cluster status` asks EC2.

Stray resources are made with boto3 outside Terraform, as a lost RunInstances reply or a hand-made extra
would leave them, tagged only with `swiftfleet:cluster`.
"""

import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from swiftfleet import aws_cluster, aws_sweep, preflight, tf
from swiftfleet.errors import SwiftfleetError
from swiftfleet.inventory import read_inventory
from tests.aws.conftest import (
    NOTHING,
    REGION,
    FaultProxy,
    aws_spec,
    cluster_file,
    default_subnet,
    leftovers,
    live_instances,
    stubbed,
)
from tests.conftest import run_cli

pytestmark = pytest.mark.moto

ZONE = "us-east-1a"
TRUST_EC2 = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)
READ_POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
)


def _tags(cluster: str, kind: str) -> list[dict[str, Any]]:
    return [{"ResourceType": kind, "Tags": [{"Key": "swiftfleet:cluster", "Value": cluster}]}]


def _instance(cluster: str, **extra: Any) -> str:
    ec2 = boto3.client("ec2", region_name=REGION)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    reply = ec2.run_instances(
        ImageId=image,
        InstanceType="g5.xlarge",
        MinCount=1,
        MaxCount=1,
        Placement={"AvailabilityZone": ZONE},
        **{"TagSpecifications": _tags(cluster, "instance"), **extra},
    )
    return str(reply["Instances"][0]["InstanceId"])


def _strays(cluster: str) -> dict[str, str]:
    """One of each EC2 kind the sweep handles, made outside Terraform: an instance in a tagged security
    group (whose rule refers to itself) holding a tagged elastic IP, a detached volume and interface, a key."""
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    group = ec2.create_security_group(
        GroupName=f"stray-{cluster}",
        Description="made by hand",
        VpcId=vpc,
        TagSpecifications=_tags(cluster, "security-group"),
    )["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=group, IpPermissions=[{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group}]}]
    )
    instance = _instance(cluster, SecurityGroupIds=[group])
    eip = ec2.allocate_address(Domain="vpc", TagSpecifications=_tags(cluster, "elastic-ip"))["AllocationId"]
    ec2.associate_address(AllocationId=eip, InstanceId=instance)
    volume = ec2.create_volume(AvailabilityZone=ZONE, Size=8, TagSpecifications=_tags(cluster, "volume"))
    subnet = ec2.describe_subnets(
        Filters=[
            {"Name": "default-for-az", "Values": ["true"]},
            {"Name": "availability-zone", "Values": [ZONE]},
        ]
    )["Subnets"][0]["SubnetId"]
    eni = ec2.create_network_interface(SubnetId=subnet, TagSpecifications=_tags(cluster, "network-interface"))
    key = ec2.create_key_pair(KeyName=f"stray-{cluster}", TagSpecifications=_tags(cluster, "key-pair"))
    return {
        "instance": instance,
        "security group": group,
        "elastic IP": eip,
        "volume": volume["VolumeId"],
        "network interface": eni["NetworkInterface"]["NetworkInterfaceId"],
        "key pair": key["KeyPairId"],
    }


def _iam_strays(cluster: str) -> str:
    """The node role and profile under the name Terraform gives them, tagged, with an inline and a managed
    policy: as a workspace lost after an `up` with S3 access leaves them."""
    iam = boto3.client("iam", region_name=REGION)
    name = aws_sweep.iam_name(cluster, REGION)
    tags = [{"Key": "swiftfleet:cluster", "Value": cluster}]
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST_EC2, Tags=tags)
    iam.put_role_policy(RoleName=name, PolicyName="s3-access", PolicyDocument=READ_POLICY)
    policy = iam.create_policy(PolicyName=f"{name}-extra", PolicyDocument=READ_POLICY)["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=name, PolicyArn=policy)
    iam.create_instance_profile(InstanceProfileName=name, Tags=tags)
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    return name


def _remaining(cluster: str) -> dict[str, list[str]]:
    """What EC2 and IAM still hold for the cluster, asked directly (not through the code under test)."""
    ec2 = boto3.client("ec2", region_name=REGION)
    iam = boto3.client("iam", region_name=REGION)
    tagged = [{"Name": "tag:swiftfleet:cluster", "Values": [cluster]}]
    name = aws_sweep.iam_name(cluster, REGION)
    return {
        "instance": [
            i["InstanceId"]
            for i in live_instances()
            if {"Key": "swiftfleet:cluster", "Value": cluster} in i.get("Tags", [])
        ],
        "security group": [
            g["GroupId"] for g in ec2.describe_security_groups(Filters=tagged)["SecurityGroups"]
        ],
        "elastic IP": [a["AllocationId"] for a in ec2.describe_addresses(Filters=tagged)["Addresses"]],
        "volume": [v["VolumeId"] for v in ec2.describe_volumes(Filters=tagged)["Volumes"]],
        "network interface": [
            n["NetworkInterfaceId"]
            for n in ec2.describe_network_interfaces(Filters=tagged)["NetworkInterfaces"]
        ],
        "key pair": [k["KeyPairId"] for k in ec2.describe_key_pairs(Filters=tagged)["KeyPairs"]],
        "IAM": [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"] == name]
        + [
            p["InstanceProfileName"]
            for p in iam.list_instance_profiles()["InstanceProfiles"]
            if p["InstanceProfileName"] == name
        ],
    }


NONE_LEFT: dict[str, list[str]] = {
    kind: []
    for kind in ("instance", "security group", "elastic IP", "volume", "network interface", "key pair", "IAM")
}


def test_down_removes_strays_beside_a_terraform_cluster(
    aws: FaultProxy, ssh_key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # In process: the CLI's down first asks the inventory's nodes over SSH whether a job runs, and moto's
    # node addresses are not loopback. The CLI's own down is run where there is no inventory (below).
    spec = aws_spec(tmp_path / "c.yml", ssh_key, name="sf-sweep")
    made = aws_cluster.up(spec, assume_yes=True)
    strays = _strays("sf-sweep")
    capsys.readouterr()

    aws_cluster.down(spec)

    said = capsys.readouterr().err
    assert "destroying cluster 'sf-sweep'" in said  # Terraform first: the strays are the sweep's
    for kind, rid in strays.items():
        assert re.search(rf"swiftfleet: (terminating|released|deleted) {kind} {rid}\b", said), (kind, rid)
    assert f"terminated {strays['instance']}" in said
    assert not any(n.instance_id in said for n in made.nodes)  # Terraform's nodes were Terraform's
    assert "swiftfleet: audit: nothing tagged swiftfleet:cluster=sf-sweep is left in us-east-1" in said
    assert "could not" not in said
    assert leftovers() == NOTHING
    assert _remaining("sf-sweep") == NONE_LEFT


def test_down_without_a_workspace_removes_a_stray_instance(
    aws: FaultProxy, ssh_key: Path, tmp_path: Path
) -> None:
    config = cluster_file(tmp_path / "c.yml", ssh_key, name="sf-lost")
    instance = _instance("sf-lost")
    assert not tf.Workspace("sf-lost").exists()

    down = run_cli("cluster", "down", "--config", str(config))

    assert down.returncode == 0, down.stderr
    assert "no Terraform workspace for cluster 'sf-lost'" in down.stderr
    assert f"swiftfleet: terminating instance {instance}" in down.stderr
    assert live_instances() == []
    assert leftovers() == NOTHING


def test_down_leaves_other_clusters_alone(aws: FaultProxy, ssh_key: Path, tmp_path: Path) -> None:
    # "sf-mine-2" starts with "sf-mine": only an exact tag match counts, for EC2 and IAM alike.
    ours, ours_role = _strays("sf-mine"), _iam_strays("sf-mine")
    others = {name: (_strays(name), _iam_strays(name)) for name in ("sf-other", "sf-mine-2")}
    untagged = _instance("sf-mine", TagSpecifications=[])  # no tag at all: not the cluster's to remove
    spec = aws_spec(tmp_path / "c.yml", ssh_key, name="sf-mine")
    before = {name: _remaining(name) for name in others}

    aws_cluster.down(spec)

    assert _remaining("sf-mine") == NONE_LEFT
    assert {name: _remaining(name) for name in others} == before
    for name, (strays, role) in others.items():
        assert before[name]["instance"] == [strays["instance"]]
        assert before[name]["IAM"] == [role, role]
    assert untagged in {i["InstanceId"] for i in live_instances()}
    assert ours["instance"] not in {i["InstanceId"] for i in live_instances()}
    assert ours_role == aws_sweep.iam_name("sf-mine", REGION)


def test_down_names_what_it_cannot_remove(aws: FaultProxy, ssh_key: Path, tmp_path: Path) -> None:
    """A volume of the cluster attached to another cluster's running instance: EC2 refuses to delete it, and
    the sweep must not detach it from a machine that is not the cluster's."""
    ec2 = boto3.client("ec2", region_name=REGION)
    theirs = _instance("sf-other")
    volume = ec2.create_volume(AvailabilityZone=ZONE, Size=8, TagSpecifications=_tags("sf-stuck", "volume"))
    ec2.attach_volume(VolumeId=volume["VolumeId"], InstanceId=theirs, Device="/dev/sdf")
    key = ec2.create_key_pair(KeyName="stray-sf-stuck", TagSpecifications=_tags("sf-stuck", "key-pair"))
    config = cluster_file(tmp_path / "c.yml", ssh_key, name="sf-stuck")

    down = run_cli("cluster", "down", "--config", str(config))

    assert down.returncode == 2
    assert "Traceback" not in down.stderr
    vol = volume["VolumeId"]
    assert f"swiftfleet: could not remove volume {vol}: VolumeInUse: " in down.stderr
    assert (
        f"swiftfleet: deleted key pair {key['KeyPairId']} (stray-sf-stuck)" in down.stderr
    )  # the rest goes on
    last = down.stderr.strip().splitlines()[-1]
    assert last == (
        f"swiftfleet: still in us-east-1 after `cluster down`, and possibly billing: volume {vol} "
        "(the lines above say why; remove them, then run `cluster down` again)"
    )
    assert "cluster 'sf-stuck' is down" not in down.stdout
    assert [v["State"] for v in ec2.describe_volumes(VolumeIds=[vol])["Volumes"]] == ["in-use"]
    assert theirs in {i["InstanceId"] for i in live_instances()}


def test_status_shows_a_terminated_node_and_the_ttl_left_of_the_other(
    aws: FaultProxy, ssh_key: Path, tmp_path: Path
) -> None:
    config = cluster_file(tmp_path / "c.yml", ssh_key, name="sf-status", ttl_hours=6)
    up = run_cli("cluster", "up", "--config", str(config), "--yes")
    assert up.returncode == 0, up.stderr
    node0, node1 = read_inventory("sf-status").nodes
    boto3.client("ec2", region_name=REGION).terminate_instances(InstanceIds=[node1.instance_id or ""])

    asked = datetime.now(UTC)
    status = run_cli("cluster", "status", "--config", str(config))
    answered = datetime.now(UTC)

    assert status.returncode == 0, status.stderr
    rows = {line.split()[0]: line.split() for line in status.stdout.splitlines()[2:4]}
    assert status.stdout.splitlines()[0].split() == [
        "node", "rank", "instance", "state", "lifecycle", "launched", "TTL", "left", "ips"
    ]  # fmt: skip
    assert rows["sf-status-node0"][1:5] == ["0", node0.instance_id, "running", "on-demand"]
    # 6 h from EC2's launch time, in whole minutes as of the status call (on a loaded machine `up` takes minutes)
    (launched,) = [i["LaunchTime"] for i in live_instances() if i["InstanceId"] == node0.instance_id]
    deadline = launched + timedelta(hours=6)
    possible = {
        f"{m // 60}h {m % 60:02d}m"
        for m in range(
            int((deadline - answered).total_seconds() // 60),
            int((deadline - asked).total_seconds() // 60) + 1,
        )
    }
    assert " ".join(rows["sf-status-node0"][8:10]) in possible, (rows["sf-status-node0"], possible)
    assert rows["sf-status-node0"][-3:] == [str(node0.private_ip), "/", node0.ansible_host]
    assert rows["sf-status-node1"][1:5] == ["1", node1.instance_id, "terminated", "on-demand"]
    assert rows["sf-status-node1"][8] == "-"  # no TTL once gone
    assert re.search(
        r"^sf-status-node1: terminated at \d{4}-\d\d-\d\d \d\d:\d\d UTC \(through the EC2 API or console\) "
        r"-- `cluster up` replaces it$",
        status.stdout,
        re.M,
    )
    assert "sf-status-node0:" not in status.stdout
    assert "cluster 'sf-status' (aws, us-east-1): 1 live instance(s)" in status.stdout

    aws_cluster.down(aws_spec(config, ssh_key, name="sf-status", ttl_hours=6))  # in process: see above
    assert leftovers() == NOTHING


def test_status_without_inventory_shows_stray_instances(
    aws: FaultProxy, ssh_key: Path, tmp_path: Path
) -> None:
    spot = _instance("sf-none", InstanceMarketOptions={"MarketType": "spot"})
    config = cluster_file(tmp_path / "c.yml", ssh_key, name="sf-none")

    status = run_cli("cluster", "status", "--config", str(config))

    assert status.returncode == 0, status.stderr
    (row,) = [line.split() for line in status.stdout.splitlines() if spot in line]
    assert row[:5] == [spot, "-", spot, "running", "spot"]  # no Name or rank tag: the id stands in
    assert (
        "cluster 'sf-none' (aws, us-east-1): 1 live instance(s) tagged swiftfleet:cluster=sf-none; no inventory"
        in (status.stdout)
    )


def test_nodes_and_find_agree_with_ec2(aws: FaultProxy) -> None:
    clients = preflight.Clients.for_region(REGION)
    running, gone = _instance("sf-api"), _instance("sf-api")
    boto3.client("ec2", region_name=REGION).terminate_instances(InstanceIds=[gone])

    states = {n.instance_id: n for n in aws_sweep.nodes(clients, "sf-api", ttl_hours=1)}

    assert {i: n.state for i, n in states.items()} == {running: "running", gone: "terminated"}
    assert states[gone].ttl_left is None and states[gone].ended is not None
    left = states[running].ttl_left
    assert left is not None and 3500 < left.total_seconds() <= 3600
    assert [(f.kind, f.id) for f in aws_sweep.find(clients, "sf-api")] == [("instance", running)]


def _file_system(cluster: str, name: str, group: str | None = None) -> tuple[str, str | None]:
    """An EFS file system tagged as the provider's default_tags tag it, and with a group, a mount target in the
    default subnet of ZONE (its interface in that group), as terraform/shared_fs.tf makes them."""
    efs = boto3.client("efs", region_name=REGION)
    fs = efs.create_file_system(
        CreationToken=name,
        Encrypted=True,
        Tags=[{"Key": "Name", "Value": name}, {"Key": "swiftfleet:cluster", "Value": cluster}],
    )["FileSystemId"]
    if group is None:
        return fs, None
    subnet = default_subnet(ZONE)
    target = efs.create_mount_target(FileSystemId=fs, SubnetId=subnet, SecurityGroups=[group])
    return fs, target["MountTargetId"]


def _group(cluster: str) -> str:
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    return str(
        ec2.create_security_group(
            GroupName=f"{cluster}-nodes",
            Description="the cluster's group",
            VpcId=vpc,
            TagSpecifications=_tags(cluster, "security-group"),
        )["GroupId"]
    )


def test_sweep_removes_the_clusters_efs_before_its_group_and_spares_others(aws: FaultProxy) -> None:
    """A lost state after `up` with shared_fs: efs: the file system and its mount target, whose interface is in
    the cluster's security group. Ten file systems of other clusters come first, so that ours is on EFS's
    second page (moto pages by 10, as AWS by default 100)."""
    efs = boto3.client("efs", region_name=REGION)
    theirs = {name: _file_system(name, f"{name}-shared") for name in (f"sf-other-{i}" for i in range(9))}
    theirs["sf-efs-2"] = _file_system(
        "sf-efs-2", "sf-efs-2-shared", _group("sf-efs-2")
    )  # a prefix is no match
    group = _group("sf-efs")
    fs, target = _file_system("sf-efs", "sf-efs-shared", group)
    clients = preflight.Clients.for_region(REGION)

    found = aws_sweep.find(clients, "sf-efs")

    assert sorted((f.kind, f.id, f.name, f.detail) for f in found) == [
        ("EFS file system", fs, "sf-efs-shared", "available"),
        ("security group", group, "sf-efs-nodes", found[-1].detail),
    ]

    lines = aws_sweep.sweep(clients, "sf-efs")

    assert lines[:2] == [
        f"deleted EFS mount target {target} (of {fs})",
        f"deleted EFS file system {fs} (sf-efs-shared)",
    ]
    assert lines[-1] == f"deleted security group {group} (sf-efs-nodes)"
    assert not any(line.startswith("could not") for line in lines), lines
    assert aws_sweep.find(clients, "sf-efs") == []
    left = {
        f["FileSystemId"]: f
        for f in efs.get_paginator("describe_file_systems").paginate().search("FileSystems[]")
    }
    assert set(left) == {fs_id for fs_id, _ in theirs.values()}
    assert all(f["LifeCycleState"] == "available" for f in left.values())
    (their_fs, their_target) = theirs["sf-efs-2"]
    assert [
        t["MountTargetId"] for t in efs.describe_mount_targets(FileSystemId=their_fs)["MountTargets"]
    ] == [their_target]
    assert [f.kind for f in aws_sweep.find(clients, "sf-efs-2")] == ["EFS file system", "security group"]


def test_down_without_a_workspace_removes_a_stray_file_system(
    aws: FaultProxy, ssh_key: Path, tmp_path: Path
) -> None:
    config = cluster_file(tmp_path / "c.yml", ssh_key, name="sf-efs-lost", shared_fs="efs")
    group = _group("sf-efs-lost")
    fs, target = _file_system("sf-efs-lost", "sf-efs-lost-shared", group)

    down = run_cli("cluster", "down", "--config", str(config))

    assert down.returncode == 0, down.stderr
    said = down.stderr
    assert f"swiftfleet: deleted EFS mount target {target} (of {fs})" in said
    assert f"swiftfleet: deleted EFS file system {fs} (sf-efs-lost-shared)" in said
    assert said.index(f"EFS file system {fs}") < said.index(f"deleted security group {group}")
    assert "swiftfleet: audit: nothing tagged swiftfleet:cluster=sf-efs-lost is left in us-east-1" in said
    assert leftovers() == NOTHING


def _efs_clients(efs: Any) -> preflight.Clients:
    """Only EFS answers: the file-system part of the sweep is run on its own."""
    return preflight.Clients(ec2=None, ssm=None, sts=None, quotas=None, iam=None, efs=efs)


def _described(fs: str, state: str) -> dict[str, Any]:
    return {
        "FileSystems": [
            {
                "OwnerId": "123456789012",
                "CreationToken": "tf-1",
                "FileSystemId": fs,
                "CreationTime": datetime(2026, 11, 24, tzinfo=UTC),
                "LifeCycleState": state,
                "NumberOfMountTargets": 0,
                "SizeInBytes": {"Value": 6144},
                "PerformanceMode": "generalPurpose",
                "Tags": [{"Key": "swiftfleet:cluster", "Value": "sf-stub"}],
            }
        ]
    }


def test_file_system_delete_is_retried_while_aws_deletes_its_mount_targets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AWS deletes mount targets asynchronously, so the file system's delete is first refused with
    FileSystemInUse, and the file system then shows "deleting" for a while (moto does both at once): the sweep
    retries within the settle deadline (started by the mount targets, no instance was terminated) and waits."""
    monkeypatch.setattr(aws_sweep, "SETTLE_POLL_S", 0)
    efs, stub = stubbed("efs")
    fs = "fs-0123456789abcdef0"
    target = {
        "MountTargetId": "fsmt-0123456789abcdef0",
        "FileSystemId": fs,
        "SubnetId": "subnet-0123456789abcdef0",
        "LifeCycleState": "available",
    }
    stub.add_response("describe_mount_targets", {"MountTargets": [target]}, {"FileSystemId": fs})
    stub.add_response("delete_mount_target", {}, {"MountTargetId": "fsmt-0123456789abcdef0"})
    for _ in range(2):
        stub.add_client_error(
            "delete_file_system",
            "FileSystemInUse",
            "File system 'fs-0123456789abcdef0' has mount targets created in it.",
            409,
            expected_params={"FileSystemId": fs},
        )
    stub.add_response("delete_file_system", {}, {"FileSystemId": fs})
    stub.add_response("describe_file_systems", _described(fs, "deleting"), {"FileSystemId": fs})
    stub.add_client_error("describe_file_systems", "FileSystemNotFound", "not found", 404)
    run = aws_sweep._Sweep(_efs_clients(efs))

    with stub:
        run.file_system(aws_sweep.Leftover("EFS file system", fs, "shared", "available"))
        stub.assert_no_pending_responses()

    assert run.lines == [
        f"deleted EFS mount target fsmt-0123456789abcdef0 (of {fs})",
        f"deleted EFS file system {fs} (shared)",
    ]
    assert not run.terminated and run.deadline > 0
    assert run.unmounted == {"fsmt-0123456789abcdef0"}  # the security groups' deletes settle too


def test_a_mount_target_that_stays_keeps_its_file_system_without_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No retrying against a refusal that will not lift: one delete, and AWS's reason in the line."""
    monkeypatch.setattr(aws_sweep, "SETTLE_POLL_S", 3600)  # a retry would hang the test
    efs, stub = stubbed("efs")
    fs = "fs-0123456789abcdef0"
    target = {
        "MountTargetId": "fsmt-0123456789abcdef0",
        "FileSystemId": fs,
        "SubnetId": "subnet-0123456789abcdef0",
        "LifeCycleState": "available",
    }
    stub.add_response("describe_mount_targets", {"MountTargets": [target]}, {"FileSystemId": fs})
    stub.add_client_error("delete_mount_target", "AccessDeniedException", "not allowed", 403)
    stub.add_client_error("delete_file_system", "FileSystemInUse", "has mount targets", 409)
    run = aws_sweep._Sweep(_efs_clients(efs))

    with stub:
        run.file_system(aws_sweep.Leftover("EFS file system", fs, "shared", "available"))
        stub.assert_no_pending_responses()

    assert run.lines == [
        f"could not remove EFS mount target fsmt-0123456789abcdef0 (of {fs}): AccessDeniedException: not allowed",
        f"could not remove EFS file system {fs} (shared): FileSystemInUse: has mount targets",
    ]


def test_file_systems_that_cannot_be_listed_fail_the_audit(aws: FaultProxy) -> None:
    efs, stub = stubbed("efs")
    stub.add_client_error(
        "describe_file_systems", "AccessDeniedException", "no elasticfilesystem:Describe*", 403
    )
    clients = dataclasses.replace(preflight.Clients.for_region(REGION), efs=efs)

    with stub, pytest.raises(SwiftfleetError) as exc:
        aws_sweep.find(clients, "sf-blind")

    assert str(exc.value) == (
        "could not list EFS file systems tagged swiftfleet:cluster=sf-blind in us-east-1: AccessDeniedException: "
        "no elasticfilesystem:Describe*: resources of the cluster may still be billing"
    )
