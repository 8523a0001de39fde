"""`cluster up` / `cluster down` on AWS: the real Terraform module applied to moto, checked through the EC2 API."""

import io
import json
from pathlib import Path

import boto3
import click
import pytest
import yaml

from swiftfleet import aws_cluster, tf
from swiftfleet.errors import SwiftfleetError
from swiftfleet.inventory import inventory_path, known_hosts_path, read_inventory
from tests.aws.conftest import (
    ADMIN_CIDR,
    NOTHING,
    REGION,
    FaultProxy,
    aws_spec,
    cluster_file,
    default_subnet,
    leftovers,
)
from tests.aws.conftest import live_instances as live
from tests.conftest import run_cli

pytestmark = pytest.mark.moto


def _rules(group: dict) -> list[tuple[str, int | None, int | None, str]]:
    """(protocol, from, to, source) for every permission of a security group, sources flattened."""
    rules = []
    for p in group["IpPermissions"]:
        for r in p.get("IpRanges", []):
            rules.append((p["IpProtocol"], p.get("FromPort"), p.get("ToPort"), r["CidrIp"]))
        for g in p.get("UserIdGroupPairs", []):
            rules.append((p["IpProtocol"], p.get("FromPort"), p.get("ToPort"), g["GroupId"]))
    return sorted(rules, key=str)


# S3 access for the full cluster: its role and policy are read back from moto's IAM.
S3_ACCESS = {
    "s3_read": ["s3://sf-models/models/qwen", "s3://sf-datasets"],
    "s3_write": ["s3://sf-outputs/runs/"],
}
NODE_PROFILE = "swiftfleet-sf-full-us-east-1-node"
TRUST_EC2 = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)


def _assert_s3_role(instances: list[dict]) -> None:
    """Every node carries the made profile; its role is EC2's alone and its one policy is exactly the grants."""
    iam = boto3.client("iam", region_name=REGION)
    profile = iam.get_instance_profile(InstanceProfileName=NODE_PROFILE)["InstanceProfile"]
    assert {i["IamInstanceProfile"]["Arn"] for i in instances} == {profile["Arn"]}
    (role,) = profile["Roles"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
    assert iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"] == ["s3-access"]
    assert iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"] == []
    policy = iam.get_role_policy(RoleName=role["RoleName"], PolicyName="s3-access")["PolicyDocument"]
    statements = {s.pop("Sid"): s for s in policy["Statement"]}
    assert all(s.pop("Effect") == "Allow" for s in statements.values())
    assert statements == {
        "ListBucket0": {
            "Action": ["s3:ListBucket"],
            "Resource": ["arn:aws:s3:::sf-models"],
            "Condition": {"StringLike": {"s3:prefix": ["models/qwen", "models/qwen/*"]}},
        },
        "ListBucket1": {"Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::sf-datasets"]},
        "ListBucket2": {
            "Action": ["s3:ListBucket"],
            "Resource": ["arn:aws:s3:::sf-outputs"],
            "Condition": {"StringLike": {"s3:prefix": ["runs", "runs/*"]}},
        },
        "ReadObjects": {
            "Action": ["s3:GetObject"],
            "Resource": [
                "arn:aws:s3:::sf-models/models/qwen",
                "arn:aws:s3:::sf-models/models/qwen/*",
                "arn:aws:s3:::sf-datasets/*",
                "arn:aws:s3:::sf-outputs/runs",
                "arn:aws:s3:::sf-outputs/runs/*",
            ],
        },
        "WriteObjects": {
            "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
            "Resource": ["arn:aws:s3:::sf-outputs/runs", "arn:aws:s3:::sf-outputs/runs/*"],
        },
    }


def _assert_shared_fs(group_id: str) -> str:
    """One encrypted EFS file system of the cluster's, with one mount target in the cluster's subnet and group;
    the inventory hands its DNS name to every node. Returns the file system's id."""
    efs = boto3.client("efs", region_name=REGION)
    (fs,) = efs.describe_file_systems()["FileSystems"]
    assert fs["Encrypted"] is True
    assert fs["ThroughputMode"] == "elastic"
    assert fs["CreationToken"] == "swiftfleet-sf-full-shared"
    assert {t["Key"]: t["Value"] for t in fs["Tags"]}["swiftfleet:cluster"] == "sf-full"
    (target,) = efs.describe_mount_targets(FileSystemId=fs["FileSystemId"])["MountTargets"]
    assert target["SubnetId"] == default_subnet("us-east-1a")
    groups = efs.describe_mount_target_security_groups(MountTargetId=target["MountTargetId"])
    assert groups["SecurityGroups"] == [group_id]
    dns = f"{fs['FileSystemId']}.efs.{REGION}.amazonaws.com"
    group = yaml.safe_load(inventory_path("sf-full").read_text())["all"]["children"]["sf_full"]
    assert group["vars"]["swiftfleet_shared_fs"] == {"type": "efs", "address": dns}
    assert tf.Workspace("sf-full").outputs()["shared_fs"] == {
        "type": "efs",
        "address": dns,
        "id": fs["FileSystemId"],
    }
    return str(fs["FileSystemId"])


def test_up_then_down_through_the_cli(aws: FaultProxy, ssh_key: Path, tmp_path: Path) -> None:
    # The full cluster also has the shared file system (EFS): moto serves EFS, mount targets included.
    config = cluster_file(tmp_path / "cluster.yml", ssh_key, name="sf-full", shared_fs="efs", **S3_ACCESS)

    result = run_cli("cluster", "up", "--config", str(config), "--yes")
    assert result.returncode == 0, result.stderr
    assert "vCPU quota     warn" in result.stdout  # moto serves no Service Quotas: a warning, not a stop
    assert "estimate: 2 x g5.xlarge: on-demand $1.006/h" in result.stdout
    assert "the 12 h TTL caps one run at $24.14" in result.stdout
    assert "applying in us-east-1a (zone 1 of 5)" in result.stderr
    assert "aws_instance.node[1]: Creation complete" in result.stderr

    ec2 = boto3.client("ec2", region_name=REGION)
    instances = live()
    assert len(instances) == 2
    by_rank = {next(t["Value"] for t in i["Tags"] if t["Key"] == "swiftfleet:rank"): i for i in instances}
    assert sorted(by_rank) == ["0", "1"]
    for inst in instances:
        tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
        assert tags["swiftfleet:cluster"] == "sf-full"
        assert inst["Placement"]["AvailabilityZone"] == "us-east-1a"
        assert inst["MetadataOptions"]["HttpTokens"] == "required"
        behaviour = ec2.describe_instance_attribute(
            InstanceId=inst["InstanceId"], Attribute="instanceInitiatedShutdownBehavior"
        )
        assert behaviour["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"
        root = next(m for m in inst["BlockDeviceMappings"] if m["DeviceName"] == inst["RootDeviceName"])
        volume = ec2.describe_volumes(VolumeIds=[root["Ebs"]["VolumeId"]])["Volumes"][0]
        assert volume["Encrypted"] is True

    (group,) = ec2.describe_security_groups(GroupNames=["swiftfleet-sf-full"])["SecurityGroups"]
    sg = group["GroupId"]
    assert _rules(group) == sorted(
        [("tcp", 22, 22, ADMIN_CIDR), ("tcp", 29500, 29600, sg), ("-1", None, None, sg)], key=str
    )  # SSH from the admin CIDR only, rendezvous and all traffic from the group itself, no deploy port
    egress = {(p["IpProtocol"], r) for p in group["IpPermissionsEgress"] for r in
              [x["CidrIp"] for x in p.get("IpRanges", [])] + [x["GroupId"] for x in p.get("UserIdGroupPairs", [])]}  # fmt: skip
    assert egress == {("-1", sg), ("-1", "0.0.0.0/0")}

    _assert_s3_role(instances)
    fs_id = _assert_shared_fs(sg)

    cluster = read_inventory("sf-full")
    assert cluster.provider == "aws"
    for node in cluster.nodes:
        inst = by_rank[str(node.rank)]
        assert node.instance_id == inst["InstanceId"]
        assert str(node.private_ip) == inst["PrivateIpAddress"]
        assert node.ansible_host == inst["PublicIpAddress"]
        assert node.availability_zone == "us-east-1a"
        assert (node.gpu_count, node.instance_type, node.ssh_user) == (1, "g5.xlarge", "ubuntu")
        assert node.gpu_memory_gib > 20  # moto's g5.xlarge: one A10G of 22888 MiB
        assert node.ssh_key == ssh_key
    assert cluster.master_addr == by_rank["0"]["PrivateIpAddress"]
    # Host keys pinned from each node's console output, for the address Ansible connects to.
    expected = {f"{n.ansible_host} {aws.console_keys[n.instance_id or '']}" for n in cluster.nodes}
    assert set(known_hosts_path("sf-full").read_text().splitlines()) == expected

    # Up again, now asking for another zone: a running cluster is updated where it is, never moved or
    # destroyed. (moto drops rule descriptions, so the update may fail; the nodes must survive either way.)
    moved = cluster_file(
        tmp_path / "moved.yml",
        ssh_key,
        name="sf-full",
        availability_zones=["us-east-1b"],
        shared_fs="efs",
        **S3_ACCESS,
    )
    again = run_cli("cluster", "up", "--config", str(moved), "--yes")
    assert "runs in us-east-1a; bringing it to the cluster file would:" in again.stderr
    assert again.returncode == 0 or "the cluster in us-east-1a keeps what it had" in again.stderr
    assert {i["InstanceId"] for i in live()} == {i["InstanceId"] for i in instances}
    assert "aws_efs" not in again.stderr  # the shared file system is no change: it stays with its data
    assert _assert_shared_fs(sg) == fs_id

    down = run_cli("cluster", "down", "--config", str(config))
    assert down.returncode == 0, down.stderr
    assert leftovers() == NOTHING
    assert not inventory_path("sf-full").exists()
    assert not tf.Workspace("sf-full").exists()


def test_capacity_error_moves_the_cluster_to_the_next_zone(
    aws: FaultProxy, ssh_key: Path, tmp_path: Path
) -> None:
    # The nodes get an existing instance profile (made here, as a user would have), which down leaves alone.
    iam = boto3.client("iam", region_name=REGION)
    iam.create_role(RoleName="team-s3", AssumeRolePolicyDocument=TRUST_EC2)
    profile = iam.create_instance_profile(InstanceProfileName="team-s3")["InstanceProfile"]
    iam.add_role_to_instance_profile(InstanceProfileName="team-s3", RoleName="team-s3")
    spec = aws_spec(tmp_path / "c.yml", ssh_key, name="sf-failover", instance_profile="team-s3")
    zone_a = default_subnet("us-east-1a")
    aws.failures[zone_a] = "InsufficientInstanceCapacity"

    cluster = aws_cluster.up(spec, assume_yes=True)

    assert zone_a in aws.run_instances  # the first zone was really tried, and refused
    assert {n.availability_zone for n in cluster.nodes} == {"us-east-1b"}
    assert {i["Placement"]["AvailabilityZone"] for i in live()} == {"us-east-1b"}
    assert len(live()) == 2
    assert {i["IamInstanceProfile"]["Arn"] for i in live()} == {profile["Arn"]}
    assert tf.Workspace("sf-failover").outputs()["instance_profile_name"] == "team-s3"
    # One group and one key pair: the first attempt's were destroyed (same names, so they could not coexist).
    found = leftovers()
    assert len(found["security_groups"]) == 1
    assert found["key_pairs"] == ["swiftfleet-sf-failover"]
    workspace_zones = {r["values"].get("availability_zone") for r in tf.Workspace("sf-failover").resources()}
    assert workspace_zones - {None} == {"us-east-1b"}

    aws_cluster.down(spec)
    assert leftovers() == {**NOTHING, "roles": ["team-s3"], "instance_profiles": ["team-s3"]}


def test_no_capacity_anywhere_leaves_nothing(aws: FaultProxy, ssh_key: Path, tmp_path: Path) -> None:
    spec = aws_spec(
        tmp_path / "c.yml", ssh_key, name="sf-nocap", availability_zones=["us-east-1c", "us-east-1d"]
    )
    aws.failures[default_subnet("us-east-1c")] = "InsufficientInstanceCapacity"
    aws.failures[default_subnet("us-east-1d")] = "Unsupported"

    with pytest.raises(
        SwiftfleetError, match=r"no capacity for 2 x g5.xlarge in us-east-1c, us-east-1d; nothing"
    ):
        aws_cluster.up(spec, assume_yes=True)

    assert leftovers() == NOTHING
    assert [r for r in tf.Workspace("sf-nocap").resources() if r["mode"] == "managed"] == []
    assert not inventory_path("sf-nocap").exists()
    aws_cluster.down(spec)
    assert not tf.Workspace("sf-nocap").exists()


def test_other_errors_stop_at_the_first_zone(aws: FaultProxy, ssh_key: Path, tmp_path: Path) -> None:
    spec = aws_spec(tmp_path / "c.yml", ssh_key, name="sf-denied")
    zone_a = default_subnet("us-east-1a")
    aws.failures[zone_a] = "UnauthorizedOperation"

    with pytest.raises(tf.TerraformError, match="UnauthorizedOperation"):
        aws_cluster.up(spec, assume_yes=True)

    assert set(aws.run_instances) == {zone_a}  # no other zone tried: retrying elsewhere cannot help
    assert leftovers() == NOTHING
    aws_cluster.down(spec)


def test_failed_preflight_creates_nothing(aws: FaultProxy, ssh_key: Path, tmp_path: Path) -> None:
    spec = aws_spec(tmp_path / "c.yml", ssh_key, name="sf-pre", ami_ssm_parameter="/missing/ami")
    with pytest.raises(SwiftfleetError, match=r"preflight failed \(AMI\)"):
        aws_cluster.up(spec, assume_yes=True)
    assert aws.run_instances == []
    assert leftovers() == NOTHING
    assert not tf.Workspace("sf-pre").exists()
    aws_cluster.down(spec)  # nothing to destroy is no error


def test_declining_the_prompt_creates_nothing(
    aws: FaultProxy, ssh_key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = aws_spec(tmp_path / "c.yml", ssh_key, name="sf-no")
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    with pytest.raises(click.exceptions.Abort):
        aws_cluster.up(spec, assume_yes=False)
    assert aws.run_instances == []
    assert leftovers() == NOTHING
    assert not tf.Workspace("sf-no").exists()
