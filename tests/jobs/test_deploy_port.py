"""A deploy serves on the port the cluster opens to clients (the security group's deploy_port), never another."""

from pathlib import Path

import pytest

from swiftfleet.errors import SwiftfleetError
from swiftfleet.inventory import Cluster, Node, read_inventory, write_inventory
from swiftfleet.jobs import plan, spec


def _nodes(deploy_port: int | None) -> list[plan.NodeInfo]:
    return [plan.NodeInfo("n0", 0, "10.0.1.10", "ubuntu", 1, 24.0, "g5.xlarge", deploy_port)]


def _deploy(**args: object) -> spec.Job:
    return spec.parse_job(
        {"job": {"name": "srv", "kind": "swift deploy", "model": "org/m", "args": args}}, "job"
    )


@pytest.mark.parametrize(("opened", "port"), [(None, 8000), (9000, 9000)])
def test_the_port_defaults_to_the_one_the_cluster_opens(opened: int | None, port: int) -> None:
    assert plan.build(_deploy(), _nodes(opened), "job").port == port


def test_another_port_than_the_cluster_opens_is_refused() -> None:
    with pytest.raises(
        SwiftfleetError, match=r"^job: args\.port: 8080, but the cluster opens 8000 to clients"
    ):
        plan.build(_deploy(port=8080), _nodes(8000), "job")


def test_a_cluster_without_a_filter_takes_any_port() -> None:
    assert plan.build(_deploy(port=8080), _nodes(None), "job").config["port"] == 8080


def test_the_inventory_carries_the_deploy_port(isolated_state: Path) -> None:
    node = Node(
        name="c-0", rank=0, ansible_host="198.51.100.1", private_ip="10.0.1.10", ssh_user="ubuntu",
        ssh_key=isolated_state / "key", gpu_count=1, gpu_memory_gib=24, instance_type="g5.xlarge",
    )  # fmt: skip
    write_inventory(Cluster(name="c", provider="aws", nodes=[node], deploy_port=9000), [])
    assert [n.deploy_port for n in plan.nodes_from_cluster(read_inventory("c"))] == [9000]
