"""One 3-node local cluster shared by the Docker tests of this directory: up once, down at the end.

Inventory and state live in a temporary directory (never the user's), and the cluster has a name and a
subnet of its own, so it can run beside a user's `local` cluster.
"""

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import yaml
from docker.models.containers import Container

from swiftfleet import local_cluster
from swiftfleet.inventory import Cluster, known_hosts_path
from swiftfleet.settings import LocalCluster
from tests.conftest import clear_local_cluster


@dataclass
class LocalEnv:
    spec: LocalCluster
    config: Path  # the cluster file, for the CLI
    env: dict[str, str]  # SWIFTFLEET_* for CLI subprocesses

    def up(self) -> Cluster:
        """Bring the cluster up, or find it up (a no-op that re-pins the keys read over docker exec)."""
        return local_cluster.up(self.spec, assume_yes=True)

    def node(self, rank: int) -> Container:
        return docker.from_env().containers.get(local_cluster.container_name(self.spec.name, rank))

    def ip(self, rank: int) -> str:
        return str(self.spec.subnet.network_address + 10 + rank)

    def sh(self, rank: int, script: str) -> str:
        result = self.node(rank).exec_run(["sh", "-c", script])
        assert result.exit_code == 0, result.output
        return str(result.output.decode())

    def ssh(self, rank: int, known_hosts: Path | None = None) -> subprocess.CompletedProcess[str]:
        """A fresh login as the inventory makes it: the cluster key, the pinned keys, strict checking."""
        key = known_hosts_path(self.spec.name).parent / "id_ed25519"
        kh = known_hosts or known_hosts_path(self.spec.name)
        return subprocess.run(
            ["ssh", "-i", str(key), "-o", f"UserKnownHostsFile={kh}", "-o", "StrictHostKeyChecking=yes",
             "-o", "BatchMode=yes", "-o", "ControlPath=none", "-o", "ConnectTimeout=10",
             f"root@{self.ip(rank)}", "hostname"],
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip


@pytest.fixture(scope="package")
def local3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnv]:
    root = tmp_path_factory.mktemp("local3")
    env = {"SWIFTFLEET_INVENTORY_DIR": str(root / "inventory"), "SWIFTFLEET_STATE_DIR": str(root / "state")}
    spec = LocalCluster(name="sft3", node_count=3, subnet="172.30.213.0/24")  # type: ignore[arg-type]
    config = root / "cluster.yml"
    config.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        mp.delenv("SWIFTFLEET_CLUSTER", raising=False)
        clear_local_cluster(spec.name)
        try:
            yield LocalEnv(spec=spec, config=config, env=env)
        finally:
            local_cluster.down(spec)
