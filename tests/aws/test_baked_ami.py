"""Baked AMIs against moto: CreateImage of a node's instance (tagged image and snapshots), `image list`, a
`cluster down` that leaves the image alone, `image rm` (deregistered, snapshots deleted); an instance with an
unencrypted volume is refused before any image is made."""

from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from swiftfleet import amis
from swiftfleet.errors import SwiftfleetError
from tests.aws.conftest import REGION, FaultProxy, cluster_file
from tests.conftest import run_cli

pytestmark = pytest.mark.moto
CLUSTER = "sf-bake"
TAGS = {amis.BAKED_TAG: CLUSTER, amis.NODE_TAG: f"{CLUSTER}-node0", amis.FINGERPRINT_TAG: "ab" * 32}


def _instance(ec2: Any, encrypted: bool) -> str:
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    root = {"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 200, "Encrypted": encrypted}}
    reply = ec2.run_instances(
        ImageId=image, InstanceType="g5.xlarge", MinCount=1, MaxCount=1, BlockDeviceMappings=[root],
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "swiftfleet:cluster", "Value": CLUSTER}]}],
    )  # fmt: skip
    return str(reply["Instances"][0]["InstanceId"])


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def test_bake_list_survive_down_and_remove(aws: FaultProxy, ssh_key: Path, tmp_path: Path) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    config = cluster_file(tmp_path / "c.yml", ssh_key, name=CLUSTER)

    baked = amis.bake(ec2, _instance(ec2, encrypted=True), "swiftfleet-sf-bake-node0-test", TAGS)

    (image,) = ec2.describe_images(ImageIds=[baked.image_id])["Images"]
    assert image["State"] == "available"
    assert _tags(image) == {"Name": "swiftfleet-sf-bake-node0-test", **TAGS}
    assert "swiftfleet:cluster" not in _tags(image)  # the key `cluster down` sweeps by
    assert baked.snapshots, image
    snapshots = ec2.describe_snapshots(SnapshotIds=baked.snapshots)["Snapshots"]
    assert all(_tags(s) == _tags(image) for s in snapshots), snapshots
    listed = run_cli("image", "list", "--config", str(config))
    assert listed.returncode == 0, listed.stderr
    (row,) = [line.split() for line in listed.stdout.splitlines() if line.startswith(baked.image_id)]
    assert row[2:5] == [CLUSTER, f"{CLUSTER}-node0", "ab" * 6] and baked.snapshots[0] in row

    down = run_cli("cluster", "down", "--config", str(config))
    assert down.returncode == 0, down.stderr
    assert ec2.describe_images(ImageIds=[baked.image_id])["Images"], "cluster down removed the baked image"

    removed = run_cli("image", "rm", baked.image_id, "--config", str(config))
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout == f"deregistered {baked.image_id}; deleted {', '.join(baked.snapshots)}\n"
    assert ec2.describe_images(Owners=["self"])["Images"] == []
    with pytest.raises(ClientError, match=r"InvalidSnapshot\.NotFound"):
        ec2.describe_snapshots(SnapshotIds=baked.snapshots)
    assert "no baked images" in run_cli("image", "list", "--config", str(config)).stdout


def test_unencrypted_volume_and_foreign_image_are_refused(
    aws: FaultProxy, ssh_key: Path, tmp_path: Path
) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    instance = _instance(ec2, encrypted=False)
    with pytest.raises(
        SwiftfleetError, match=rf"^instance {instance}: volume vol-\w+ is not encrypted, so the"
    ):
        amis.bake(ec2, instance, "swiftfleet-plain", TAGS)
    assert ec2.describe_images(Owners=["self"])["Images"] == []

    config = cluster_file(tmp_path / "c.yml", ssh_key, name=CLUSTER)
    amazon = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    foreign = run_cli("image", "rm", amazon, "--config", str(config))
    assert (foreign.returncode, foreign.stderr) == (
        2, f"swiftfleet: image {amazon} is not one swiftfleet baked (no {amis.BAKED_TAG} tag): left alone\n"
    )  # fmt: skip
    missing = run_cli("image", "rm", "ami-0123456789abcdef0", "--config", str(config))
    assert missing.returncode == 2 and missing.stderr.startswith("swiftfleet: image ami-0123456789abcdef0: ")
    assert len(missing.stderr.splitlines()) == 1
