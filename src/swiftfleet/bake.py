"""`swiftfleet image bake|list|rm`: a set-up node made into an image that new nodes start from, so that their
setup has nothing to do (their recorded fingerprint matches: swiftfleet.setup_fingerprint leaves the cluster's
name out), and the images listed and removed (they cost disk, on aws money: `cluster down` never removes them).

The source node must be idle (no job unit) and completely set up (/etc/swiftfleet/setup.json). What belongs to
that one node is not baked: on local images the SSH host keys (the image's unit makes new ones at boot), the
machine id, the source cluster's login key, the journal, old job directories and job units; setup's records stay,
as they make the new node's setup a no-op. On aws the node itself is imaged (swiftfleet.amis); cloud-init gives
each new instance its own host keys at first boot, and the TTL deadline is written again by its user data.
"""

import json
import time
from dataclasses import dataclass

import docker.errors

from swiftfleet import node_jobs
from swiftfleet.errors import SwiftfleetError
from swiftfleet.image import docker_client, progress
from swiftfleet.inventory import Cluster, Node, read_inventory
from swiftfleet.settings import AwsCluster, ClusterSpec, LocalCluster

SETUP_FILE = "/etc/swiftfleet/setup.json"
ROLE_LABEL = "org.swiftfleet.role"
BAKED_ROLE = "baked-node-image"
FROM_LABEL = "org.swiftfleet.baked-from"
NODE_LABEL = "org.swiftfleet.node"
FINGERPRINT_LABEL = "org.swiftfleet.setup-fingerprint"
LOCAL_REPOSITORY = "swiftfleet-baked"
# Run in a throwaway container of the committed node (never in the node itself, which keeps running as it was).
SCRUB = r"""set -eu
rm -f /etc/ssh/ssh_host_*
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id /root/.ssh/authorized_keys /etc/swiftfleet/ttl-deadline
rm -rf /var/log/journal/*
rm -f /etc/systemd/system/swiftfleet-*-rank*.service
jobs=$(python3 -c 'import json; r = json.load(open("/etc/swiftfleet/node.json"))
print((r.get("data_dir") or r["home"] + "/swiftfleet") + "/jobs")')
if [ -d "$jobs" ]; then find "$jobs" -mindepth 1 -delete; fi
"""
SCRUB_TIMEOUT_S = 300
HEAD = ["image", "from", "node", "fingerprint", "created", "MB"]


@dataclass(frozen=True)
class Source:
    cluster: Cluster
    node: Node
    fingerprint: str


def source(spec: ClusterSpec, rank: int) -> Source:
    """The node of that rank, idle and set up; one clear line for anything else."""
    cluster = read_inventory(spec.name)
    node = next((n for n in cluster.nodes if n.rank == rank), None)
    if node is None:
        raise SwiftfleetError(
            f"cluster {spec.name!r} has no node {rank} (its nodes: 0-{len(cluster.nodes) - 1})"
        )
    (found,) = node_jobs.running(cluster, [node])
    if found.error:
        raise SwiftfleetError(f"{node.name}: cannot ask whether a job runs ({found.error}): not baked")
    if found.jobs:
        raise SwiftfleetError(
            f"{node.name} runs {node_jobs.describe([found])}: bake an idle node (make stop JOB=... first)"
        )
    read = node_jobs.ssh(cluster.name, node, "cat", SETUP_FILE)
    try:
        fingerprint = str(json.loads(read.stdout)["fingerprint"]) if read.returncode == 0 else ""
    except (ValueError, KeyError, TypeError):
        fingerprint = ""
    if not fingerprint:
        raise SwiftfleetError(
            f"{node.name} has no complete setup ({SETUP_FILE}): run `make setup` first (an image of it would "
            "not skip setup)"
        )
    return Source(cluster, node, fingerprint)


def bake_local(spec: LocalCluster, src: Source, tag: str | None) -> str:
    """Commit the node's container (paused while its file system is copied, so the copy is consistent), scrub
    the copy of what belongs to that node alone, and tag it; returns the image's tag."""
    from swiftfleet.local_cluster import container_name

    client = docker_client()
    name = container_name(spec.name, src.node.rank)
    try:
        container = client.containers.get(name)
    except docker.errors.NotFound:
        raise SwiftfleetError(f"{name}: no such container (run `make cluster-up` first)") from None
    tag = tag or f"{LOCAL_REPOSITORY}:{spec.name}-node{src.node.rank}-{time.strftime('%Y%m%dT%H%M%S')}"
    repository, _, version = tag.rpartition(":") if ":" in tag.rsplit("/", 1)[-1] else (tag, "", "latest")
    progress(f"image bake: committing {name} (paused while its file system is copied) ...")
    copy = container.commit(pause=True)
    scrub = client.containers.run(copy.id, ["sh", "-c", SCRUB], detach=True, network_mode="none")
    try:
        status = scrub.wait(timeout=SCRUB_TIMEOUT_S)
        if status["StatusCode"] != 0:
            tail = scrub.logs().decode(errors="replace").strip().splitlines()[-1:]
            raise SwiftfleetError(f"image bake: scrubbing the copy of {name} failed: {' '.join(tail)}")
        labels = {
            ROLE_LABEL: BAKED_ROLE, FROM_LABEL: spec.name, NODE_LABEL: src.node.name,
            FINGERPRINT_LABEL: src.fingerprint,
        }  # fmt: skip
        changes = ['CMD ["/lib/systemd/systemd"]', *(f'LABEL {k}="{v}"' for k, v in labels.items())]
        scrub.commit(repository=repository, tag=version, changes=changes)
    finally:
        scrub.remove(force=True)
    progress(f"image bake: {tag} ready")
    return tag


def local_images() -> list[list[str]]:
    """`image list`'s rows (under HEAD) of every baked local image."""
    rows = []
    for image in docker_client().images.list(filters={"label": f"{ROLE_LABEL}={BAKED_ROLE}"}):
        labels = image.labels or {}
        for tag in image.tags or [image.short_id]:
            rows.append(
                [
                    tag, labels.get(FROM_LABEL, "-"), labels.get(NODE_LABEL, "-"),
                    labels.get(FINGERPRINT_LABEL, "-")[:12], image.attrs.get("Created", "")[:19],
                    str(image.attrs.get("Size", 0) // 2**20),
                ]
            )  # fmt: skip
    return rows


def remove_local(tag: str) -> None:
    """Remove a baked local image; refused for any other image and while a container uses it."""
    client = docker_client()
    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        raise SwiftfleetError(
            f"image {tag} not found (`swiftfleet image list` shows the baked ones)"
        ) from None
    if (image.labels or {}).get(ROLE_LABEL) != BAKED_ROLE:
        raise SwiftfleetError(f"image {tag} is not one swiftfleet baked: left alone")
    try:
        client.images.remove(tag)
    except docker.errors.APIError as exc:
        raise SwiftfleetError(
            f"image {tag}: {exc.explanation} (take down the cluster that uses it first)"
        ) from None


def bake_aws(spec: AwsCluster, src: Source, name: str | None) -> str:
    from swiftfleet import amis
    from swiftfleet.preflight import Clients

    if not src.node.instance_id:
        raise SwiftfleetError(
            f"{src.node.name}: the inventory names no instance id: run `make cluster-up` again"
        )
    name = name or f"swiftfleet-{spec.name}-node{src.node.rank}-{time.strftime('%Y%m%dT%H%M%S')}"
    tags = {amis.BAKED_TAG: spec.name, amis.NODE_TAG: src.node.name, amis.FINGERPRINT_TAG: src.fingerprint}
    progress(
        f"image bake: CreateImage of {src.node.instance_id} ({src.node.name} reboots; this takes minutes) ..."
    )
    return amis.bake(Clients.for_region(spec.region).ec2, src.node.instance_id, name, tags).image_id
