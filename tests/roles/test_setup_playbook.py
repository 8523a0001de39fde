"""playbooks/setup.yml on a real 2-node local cluster over SSH, twice: the second run changes nothing.

The cluster has its own name, subnet, inventory and state directories, so it runs beside a user's clusters.
The ms-swift install dominates; the package cache shared by all local nodes (/var/cache/swiftfleet) makes the
second node and later runs cheap.
"""

import json
from collections.abc import Iterator

import pytest
import yaml

from swiftfleet.inventory import inventory_path, known_hosts_path
from tests.conftest import REPO, run_cli
from tests.roles.conftest import Run, ansible_playbook

pytestmark = pytest.mark.docker
CLUSTER = {"provider": "local", "name": "sfsetup", "node_count": 2, "subnet": "172.31.250.0/24"}
HOSTS = {"sfsetup-node0", "sfsetup-node1"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, node_image: str) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("setup")
    env = {"SWIFTFLEET_INVENTORY_DIR": str(root / "inventory"), "SWIFTFLEET_STATE_DIR": str(root / "state")}
    config = root / "cluster.yml"
    config.write_text(yaml.safe_dump(CLUSTER))
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        mp.delenv("SWIFTFLEET_CLUSTER", raising=False)
        try:
            up = run_cli("cluster", "up", "--config", str(config), env=env)
            assert up.returncode == 0, up.stdout + up.stderr
            yield env
        finally:
            down = run_cli("cluster", "down", "--config", str(config), env=env)
            assert down.returncode == 0, down.stdout + down.stderr


def _setup(env: dict[str, str]) -> Run:
    return ansible_playbook(
        "-i", str(inventory_path(CLUSTER["name"])), str(REPO / "playbooks" / "setup.yml"), env=env
    )


def test_setup_twice_second_run_changes_nothing(cluster: dict[str, str]) -> None:
    first = _setup(cluster)
    print(f"setup.yml on 2 nodes, first run: {first.seconds:.0f} s")
    assert first.rc == 0, first.output[-8000:]
    recap = first.recap()
    assert set(recap) == HOSTS
    assert all(r["failed"] == 0 and r["unreachable"] == 0 and r["changed"] > 0 for r in recap.values()), recap

    second = _setup(cluster)
    print(f"setup.yml on 2 nodes, second run: {second.seconds:.0f} s")
    assert second.rc == 0, second.output[-8000:]
    recap = second.recap()
    assert set(recap) == HOSTS
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in recap.values()), recap

    # The controller's report: both nodes, the CPU stack, consistent.
    report = json.loads((known_hosts_path(CLUSTER["name"]).parent / "stack.json").read_text())
    assert set(report) == HOSTS
    for node in report.values():
        assert (node["torch"], node["torch_cuda"], node["gpu"]) == ("2.13.0+cpu", None, "no GPU")
        assert node["ms_swift"] == "4.6.0" and node["consistent"] is True, node
    assert "consistent" in second.output and "2.13.0+cpu" in second.output  # the table was printed
