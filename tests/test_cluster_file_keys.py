"""Unknown keys in a cluster file named with the closest setting, and the settings Terraform's own validation
(terraform/variables.tf) would refuse only at `terraform apply`: one line, exit 2, before any call."""

import ipaddress
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli
from tests.test_cluster_file_errors import Tripwire, aws, keys, tripwire  # noqa: F401 (the fixtures)

LOCAL_KEYS = "provider, name, node_count, subnet, image, idle_stop_minutes"
CR = "cr-0123456789abcdef0"


def _without(content: dict[str, object], old: str, new: str) -> dict[str, object]:
    return {(new if k == old else k): v for k, v in content.items()}


# (case id, cluster file content from the key dir, the line after "swiftfleet: cluster file PATH: ")
CASES: list[tuple[str, Callable[[Path], object], str]] = [
    (
        "aws-required-misspelt",  # node_count then counts as missing: the same problem, not one more
        lambda k: _without(aws(k), "node_count", "node_cout"),
        "node_cout: unknown key (did you mean 'node_count'?)",
    ),
    (
        "aws-list-misspelt",
        lambda k: _without(aws(k), "admin_cidrs", "admin_cidr"),
        "admin_cidr: unknown key (did you mean 'admin_cidrs'?)",
    ),
    (
        "aws-optional-misspelt",
        lambda k: aws(k, ttl_hour=4),
        "ttl_hour: unknown key (did you mean 'ttl_hours'?)",
    ),
    (
        "local-misspelt",
        lambda k: {"provider": "local", "node_cout": 2},
        "node_cout: unknown key (did you mean 'node_count'?)",
    ),
    (
        "default-provider-misspelt",
        lambda k: {"nodecount": 2},
        "nodecount: unknown key (did you mean 'node_count'?)",
    ),
    (
        "hosts-misspelt",
        lambda k: {"provider": "hosts", "name": "mine", "hostsfile": "hosts.yml"},
        "hostsfile: unknown key (did you mean 'hosts_file'?)",
    ),
    (
        "nothing-close",
        lambda k: {"provider": "local", "colour": "blue"},
        f"colour: unknown key (known here: {LOCAL_KEYS})",
    ),
    (
        "deploy-port-rendezvous",
        lambda k: aws(k, deploy_port=29500),
        "deploy_port: 29500 lies in 29500-29600, the torchrun rendezvous range (jobs' master_port): a server "
        "there takes the port a training job's rank 0 listens on; pick another, e.g. 8000",
    ),
    (
        "deploy-port-rendezvous-top",
        lambda k: aws(k, deploy_port=29600),
        "deploy_port: 29600 lies in 29500-29600, the torchrun rendezvous range (jobs' master_port): a server "
        "there takes the port a training job's rank 0 listens on; pick another, e.g. 8000",
    ),
    (
        "deploy-port-staging",
        lambda k: aws(k, deploy_port=29601),
        "deploy_port: 29601 lies in 29601-29699, where rank 0 serves a job's uploads to the other nodes while it "
        "is staged; pick another, e.g. 8000",
    ),
    (
        "deploy-port-ssh",
        lambda k: aws(k, deploy_port=22),
        "deploy_port: 22 is SSH's port (open to admin_cidrs only); pick another, e.g. 8000",
    ),
    (
        "deploy-port-privileged",
        lambda k: aws(k, deploy_port=443),
        "deploy_port: 443 is outside 1024-65535 (below 1024 needs root); pick another, e.g. 8000",
    ),
    (
        "deploy-port-too-high",
        lambda k: aws(k, deploy_port=70000),
        "deploy_port: Input should be less than or equal to 65535",
    ),
    (
        "zone-of-another-region",
        lambda k: aws(k, availability_zones=["us-east-1a", "us-west-2b"]),
        "availability_zones: us-west-2b does not lie in region us-east-1",
    ),
    (
        "subnet-with-two-azs",  # a model validator's error names its field, not `file`
        lambda k: aws(k, subnet_id="subnet-0abc", availability_zones=["us-east-1a", "us-east-1b"]),
        "availability_zones: subnet_id pins one AZ: give at most one entry with it",
    ),
    (
        "admin-cidrs-open",  # README's example line
        lambda k: aws(k, admin_cidrs=["0.0.0.0/0"]),
        "admin_cidrs: 0.0.0.0/0 opens SSH to the whole internet; name your own CIDR or set "
        "allow_ssh_from_anywhere: true",
    ),
    (
        "admin-cidrs-two-halves",  # the whole internet without a /0
        lambda k: aws(k, admin_cidrs=["0.0.0.0/1", "128.0.0.0/1"]),
        "admin_cidrs: 0.0.0.0/1 opens SSH to 2,147,483,648 addresses (a prefix shorter than /8); name your own "
        "CIDR or set allow_ssh_from_anywhere: true",
    ),
    (
        "admin-cidr-a-number",  # YAML's int, which ipaddress would take as 0.0.48.57/32
        lambda k: aws(k, admin_cidrs=[12345]),
        "admin_cidrs.0: 12345 is not a CIDR; write it as text such as 203.0.113.7/32",
    ),
    (
        "admin-cidr-host-bits",
        lambda k: aws(k, admin_cidrs=["203.0.113.7/24"]),
        "admin_cidrs.0: 203.0.113.7/24: host bits set: did you mean 203.0.113.0/24?",
    ),
    (
        "client-cidrs-open",
        lambda k: aws(k, client_cidrs=["0.0.0.0/0"]),
        "client_cidrs: 0.0.0.0/0 opens the deploy API (port 8000) to the whole internet; name your clients' "
        "CIDRs or set allow_deploy_from_anywhere: true",
    ),
    (
        "client-cidrs-wide",
        lambda k: aws(k, client_cidrs=["198.51.100.0/24", "64.0.0.0/4"], deploy_port=8080),
        "client_cidrs: 64.0.0.0/4 opens the deploy API (port 8080) to 268,435,456 addresses (a prefix shorter "
        "than /8); name your clients' CIDRs or set allow_deploy_from_anywhere: true",
    ),
    (
        "client-cidrs-ssh-flag-is-not-enough",
        lambda k: aws(k, client_cidrs=["0.0.0.0/0"], allow_ssh_from_anywhere=True),
        "client_cidrs: 0.0.0.0/0 opens the deploy API (port 8000) to the whole internet; name your clients' "
        "CIDRs or set allow_deploy_from_anywhere: true",
    ),
    (
        "local-subnet-host-bits",
        lambda k: {"provider": "local", "subnet": "172.30.0.5/24"},
        "subnet: 172.30.0.5/24: host bits set: did you mean 172.30.0.0/24?",
    ),
    (
        "aws-keys-without-provider",
        lambda k: {key: v for key, v in aws(k).items() if key != "provider"},
        "provider: missing; these keys (region, instance_type, admin_cidrs, public_key_file) belong to "
        "provider: aws",
    ),
    (
        "hosts-keys-without-provider",
        lambda k: {"name": "mine", "hosts_file": "hosts.yml"},
        "provider: missing; these keys (hosts_file) belong to provider: hosts",
    ),
    (
        "s3-prefix-delete-character",
        lambda k: aws(k, s3_read=["s3://models-bucket/a\x7fb"]),
        "s3_read.0: 's3://models-bucket/a\\x7fb': the key prefix must not hold wildcards or policy variables "
        "(* ? $), control characters or empty parts (//), and at most 512 characters",
    ),
    (
        "reservation-id-bad",
        lambda k: aws(k, capacity_reservation_id="cr-XYZ"),
        "capacity_reservation_id: 'cr-XYZ' is not a capacity reservation id such as cr-0123456789abcdef0",
    ),
    (
        "capacity-block-without-reservation",
        lambda k: aws(k, capacity_block=True),
        "capacity_block: true needs capacity_reservation_id (the Capacity Block's cr- id)",
    ),
    (
        "spot-with-reservation",
        lambda k: aws(k, capacity_reservation_id=CR, spot=True),
        "spot: a capacity reservation (a Capacity Block too) holds on-demand capacity; drop spot: true or "
        "capacity_reservation_id",
    ),
    (
        "placement-group-with-reservation",
        lambda k: aws(k, capacity_reservation_id=CR, capacity_block=True, placement_group=True),
        "placement_group: true conflicts with capacity_reservation_id (a targeted reservation places the nodes "
        "itself); leave placement_group out",
    ),
    (
        "shared-fs-not-a-name",  # YAML's `yes` is a boolean, not the word "efs"
        lambda k: aws(k, shared_fs=True),
        "shared_fs: Input should be 'none' or 'efs'",
    ),
    (
        "reservation-with-two-azs",
        lambda k: aws(k, capacity_reservation_id=CR, availability_zones=["us-east-1a", "us-east-1b"]),
        "availability_zones: capacity_reservation_id pins the reservation's AZ: give at most one entry with it",
    ),
]


@pytest.mark.parametrize(("case", "content", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_cluster_key_is_one_line(
    case: str,
    content: Callable[[Path], object],
    expected: str,
    keys: Path,  # noqa: F811
    tripwire: Tripwire,  # noqa: F811
) -> None:
    cfg = keys / f"{case}.yml"
    cfg.write_text(yaml.safe_dump(content(keys), sort_keys=False))
    for command in (["cluster", "up", "--yes"], ["cluster", "down"], ["check"]):
        res = run_cli(*command, "--config", str(cfg), env=tripwire.env())
        assert res.returncode == 2, (command, res.stdout, res.stderr)
        assert res.stderr.strip().splitlines() == [f"swiftfleet: cluster file {cfg}: {expected}"]
    assert tripwire.connections == 0
    assert not tripwire.calls.exists(), tripwire.calls.read_text()


@pytest.mark.parametrize("port", [1024, 8000, 29499, 29700, 65535])
def test_deploy_ports_terraform_accepts_load(port: int, keys: Path) -> None:  # noqa: F811
    from swiftfleet.settings import AwsCluster, load_cluster

    cfg = keys / "good.yml"
    cfg.write_text(yaml.safe_dump(aws(keys, deploy_port=port, availability_zones=["us-east-1c"])))
    spec = load_cluster(cfg)
    assert isinstance(spec, AwsCluster) and spec.deploy_port == port


@pytest.mark.parametrize(
    "changes",
    [
        {"admin_cidrs": ["10.0.0.0/8"]},
        {"admin_cidrs": ["0.0.0.0/1", "128.0.0.0/1"], "allow_ssh_from_anywhere": True},
        {"client_cidrs": ["0.0.0.0/0"], "allow_deploy_from_anywhere": True},
        {"client_cidrs": ["198.51.100.0/24"]},
    ],
    ids=["admin-slash-8", "admin-allowed-anywhere", "client-allowed-anywhere", "client-own"],
)
def test_cidrs_within_the_rules_load(changes: dict[str, object], keys: Path) -> None:  # noqa: F811
    """The twins of the CIDR cases above: a /8, and wider ranges with their explicit allow_*_from_anywhere."""
    from swiftfleet.settings import AwsCluster, load_cluster

    cfg = keys / "good.yml"
    cfg.write_text(yaml.safe_dump(aws(keys, **changes)))
    spec = load_cluster(cfg)
    assert isinstance(spec, AwsCluster)
    assert {k: getattr(spec, k) for k in changes} == {
        k: [ipaddress.IPv4Network(c) for c in v] if isinstance(v, list) else v for k, v in changes.items()
    }


@pytest.mark.parametrize(
    "changes",
    [
        {"capacity_reservation_id": CR},
        {
            "capacity_reservation_id": "cr-0a1b2c3d",
            "availability_zones": ["us-east-1b"],
            "placement_group": False,
        },
        {"capacity_reservation_id": CR, "capacity_block": True},
    ],
    ids=["reservation", "short-id-one-zone", "capacity-block"],
)
def test_reservations_load(changes: dict[str, object], keys: Path) -> None:  # noqa: F811
    """The twins of the reservation cases above, and what Terraform gets from them."""
    from swiftfleet.aws_cluster import variables
    from swiftfleet.settings import AwsCluster, load_cluster

    cfg = keys / "good.yml"
    cfg.write_text(yaml.safe_dump(aws(keys, **changes)))
    spec = load_cluster(cfg)
    assert isinstance(spec, AwsCluster)
    given = variables(spec, "us-east-1b")
    assert given["capacity_reservation_id"] == changes["capacity_reservation_id"]
    assert given["capacity_block"] is changes.get("capacity_block", False)


@pytest.mark.parametrize("shared_fs", [None, "none", "efs"])
def test_shared_fs_reaches_terraform_and_the_inventory(
    shared_fs: str | None,
    keys: Path,  # noqa: F811
    isolated_state: Path,
) -> None:
    """shared_fs becomes the module's variable; the module's shared_fs output (null without one) becomes the
    inventory's swiftfleet_shared_fs, which is absent, not null, without one."""
    from swiftfleet.aws_cluster import _shared_fs, variables
    from swiftfleet.inventory import Cluster, Node, inventory_path, read_inventory, write_inventory
    from swiftfleet.settings import AwsCluster, load_cluster

    cfg = keys / "good.yml"
    cfg.write_text(yaml.safe_dump(aws(keys, shared_fs=shared_fs)))
    spec = load_cluster(cfg)
    assert isinstance(spec, AwsCluster)
    assert variables(spec, "us-east-1a")["shared_fs"] == (shared_fs or "none")

    dns = "fs-0123456789abcdef0.efs.us-east-1.amazonaws.com"
    output = {"type": "efs", "address": dns, "id": "fs-0123456789abcdef0"} if shared_fs == "efs" else None
    nodes = [
        Node(name=f"trainers-node{r}", rank=r, ansible_host=f"10.0.0.{r + 10}", private_ip=f"10.0.0.{r + 10}",
             ssh_user="ubuntu", ssh_key=keys / "id_ed25519")
        for r in range(2)
    ]  # fmt: skip
    write_inventory(Cluster(name="trainers", provider="aws", nodes=nodes, shared_fs=_shared_fs(output)), [])
    group = yaml.safe_load(inventory_path("trainers").read_text())["all"]["children"]["trainers"]
    if shared_fs == "efs":
        assert group["vars"]["swiftfleet_shared_fs"] == {"type": "efs", "address": dns}
    else:
        assert "swiftfleet_shared_fs" not in group["vars"]
    assert read_inventory("trainers").shared_fs == _shared_fs(output)
