"""Baked AMIs: an aws node made into an image (EC2 CreateImage), listed, and removed with its snapshots.

CreateImage reboots the instance (NoReboot is left false): the snapshots are then taken of a cleanly shut down
file system, not of one with the page cache half written. The node must be idle anyway (swiftfleet.bake checks).
The image and its snapshots carry `swiftfleet:baked-from`, never `swiftfleet:cluster`: `cluster down` sweeps by
that tag, and a baked image must outlive the cluster it came from. They are removed only by `image rm`.
Snapshots of encrypted volumes are encrypted: a node with an unencrypted volume is refused before anything is made.
"""

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError, WaiterError

from swiftfleet.errors import SwiftfleetError
from swiftfleet.preflight import aws_error

BAKED_TAG = "swiftfleet:baked-from"  # the cluster the image was made from
NODE_TAG = "swiftfleet:node"
FINGERPRINT_TAG = "swiftfleet:setup-fingerprint"
# An AMI of a 200 GiB root volume takes minutes to tens of minutes; one poll every 15 s for up to an hour.
WAIT_DELAY_S = 15
WAIT_ATTEMPTS = 240
HEAD = ["ami", "name", "from", "node", "fingerprint", "state", "created", "snapshots"]


@dataclass(frozen=True)
class BakedAmi:
    image_id: str
    name: str
    state: str
    created: str
    tags: dict[str, str]
    snapshots: list[str]


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


def _baked(image: dict[str, Any]) -> BakedAmi:
    return BakedAmi(
        image_id=image["ImageId"],
        name=image.get("Name", ""),
        state=image.get("State", "unknown"),
        created=image.get("CreationDate", ""),
        tags=_tags(image),
        snapshots=[
            m["Ebs"]["SnapshotId"]
            for m in image.get("BlockDeviceMappings", [])
            if m.get("Ebs", {}).get("SnapshotId")
        ],
    )


def _instance_volumes(ec2: Any, instance_id: str) -> list[dict[str, Any]]:
    try:
        reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    except ClientError as exc:
        raise SwiftfleetError(f"instance {instance_id}: {aws_error(exc)}") from None
    instances = [i for r in reservations for i in r["Instances"]]
    if not instances or instances[0]["State"]["Name"] != "running":
        state = instances[0]["State"]["Name"] if instances else "gone"
        raise SwiftfleetError(f"instance {instance_id} is {state}, not running: nothing to bake")
    ids = [m["Ebs"]["VolumeId"] for m in instances[0].get("BlockDeviceMappings", []) if "Ebs" in m]
    return list(ec2.describe_volumes(VolumeIds=ids)["Volumes"]) if ids else []


def bake(ec2: Any, instance_id: str, name: str, tags: dict[str, str]) -> BakedAmi:
    """Make an AMI of the instance (rebooting it), wait until it is available, tag its snapshots like it."""
    plain = [v["VolumeId"] for v in _instance_volumes(ec2, instance_id) if not v.get("Encrypted")]
    if plain:
        raise SwiftfleetError(
            f"instance {instance_id}: volume {', '.join(plain)} is not encrypted, so the AMI's snapshots would not "
            "be: not baked"
        )
    tag_list = [{"Key": k, "Value": v} for k, v in {"Name": name, **tags}.items()]
    try:
        image_id = ec2.create_image(
            InstanceId=instance_id, Name=name, NoReboot=False,
            Description=f"swiftfleet: {tags.get(NODE_TAG, instance_id)} after setup",
            TagSpecifications=[{"ResourceType": "image", "Tags": tag_list}],
        )["ImageId"]  # fmt: skip
    except ClientError as exc:
        raise SwiftfleetError(f"CreateImage of {instance_id}: {aws_error(exc)}") from None
    try:
        ec2.get_waiter("image_available").wait(
            ImageIds=[image_id], WaiterConfig={"Delay": WAIT_DELAY_S, "MaxAttempts": WAIT_ATTEMPTS}
        )
    except WaiterError as exc:
        raise SwiftfleetError(
            f"{image_id} is not available after {WAIT_DELAY_S * WAIT_ATTEMPTS // 60} min ({exc.last_response}); "
            f"`swiftfleet image list` shows it, `image rm {image_id}` removes it"
        ) from None
    image = describe(ec2, image_id)
    if image.snapshots:  # tagged once they exist (CreateImage's own snapshot tags are not served everywhere)
        ec2.create_tags(Resources=image.snapshots, Tags=tag_list)
    return image


def describe(ec2: Any, image_id: str) -> BakedAmi:
    """The image if it is one of ours; one clear line otherwise."""
    try:
        images = ec2.describe_images(ImageIds=[image_id])["Images"]
    except ClientError as exc:
        raise SwiftfleetError(f"image {image_id}: {aws_error(exc)}") from None
    if not images:
        raise SwiftfleetError(f"image {image_id} not found (deregistered already?)")
    image = _baked(images[0])
    if BAKED_TAG not in image.tags:
        raise SwiftfleetError(
            f"image {image_id} is not one swiftfleet baked (no {BAKED_TAG} tag): left alone"
        )
    return image


def listed(ec2: Any) -> list[BakedAmi]:
    """Every AMI of this account in the client's region that swiftfleet baked, oldest first."""
    images = ec2.describe_images(Owners=["self"], Filters=[{"Name": "tag-key", "Values": [BAKED_TAG]}])[
        "Images"
    ]
    return sorted((_baked(i) for i in images), key=lambda b: b.created)


def rows(images: list[BakedAmi]) -> list[list[str]]:
    """`image list`'s rows, under HEAD."""
    return [
        [b.image_id, b.name, b.tags.get(BAKED_TAG, "-"), b.tags.get(NODE_TAG, "-"),
         b.tags.get(FINGERPRINT_TAG, "-")[:12], b.state, b.created, " ".join(b.snapshots)]
        for b in images
    ]  # fmt: skip


def remove(ec2: Any, image_id: str) -> BakedAmi:
    """Deregister the image, then delete its snapshots (they bill until deleted)."""
    image = describe(ec2, image_id)
    try:
        ec2.deregister_image(ImageId=image_id)
        for snapshot in image.snapshots:
            ec2.delete_snapshot(SnapshotId=snapshot)
    except ClientError as exc:
        raise SwiftfleetError(f"removing {image_id}: {aws_error(exc)}") from None
    return image
