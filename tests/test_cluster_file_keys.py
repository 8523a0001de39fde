"""Unknown keys in a cluster file named with the closest setting, and the settings Terraform's own validation
(terraform/variables.tf) would refuse only at `terraform apply`: one line, exit 2, before any call."""

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli
from tests.test_cluster_file_errors import Tripwire, aws, keys, tripwire  # noqa: F401 (the fixtures)

LOCAL_KEYS = "provider, name, node_count, subnet, image"


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
        "file: availability_zones: us-west-2b does not lie in region us-east-1",
    ),
    (
        "s3-prefix-delete-character",
        lambda k: aws(k, s3_read=["s3://models-bucket/a\x7fb"]),
        "s3_read.0: 's3://models-bucket/a\\x7fb': the key prefix must not hold wildcards or policy variables "
        "(* ? $), control characters or empty parts (//), and at most 512 characters",
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
    cfg.write_text(yaml.safe_dump(content(keys)))
    for command in (["cluster", "up", "--yes"], ["cluster", "down"], ["check"]):
        res = run_cli(*command, "--config", str(cfg), env=tripwire.env())
        assert res.returncode == 2, (command, res.stdout, res.stderr)
        assert res.stderr.strip().splitlines() == [f"swiftfleet: cluster file {cfg}: {expected}"]
    assert tripwire.connections == 0
    assert not tripwire.calls.exists(), tripwire.calls.read_text()


@pytest.mark.parametrize("port", [1024, 8000, 29499, 29601, 65535])
def test_deploy_ports_terraform_accepts_load(port: int, keys: Path) -> None:  # noqa: F811
    from swiftfleet.settings import AwsCluster, load_cluster

    cfg = keys / "good.yml"
    cfg.write_text(yaml.safe_dump(aws(keys, deploy_port=port, availability_zones=["us-east-1c"])))
    spec = load_cluster(cfg)
    assert isinstance(spec, AwsCluster) and spec.deploy_port == port
