"""The rehearsal cluster, shared by every e2e module: one 2-node local cluster per session, set up once with the
playbook a user runs. Its own name, subnet, inventory, state and outputs; SWIFTFLEET_E2E_NAME and
SWIFTFLEET_E2E_SUBNET move it aside, so that two sessions on one machine do not share a cluster."""

import ipaddress
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from swiftfleet import local_cluster
from swiftfleet.inventory import inventory_path
from tests.conftest import REPO, clear_local_cluster, run_cli
from tests.e2e.make_eval_set import make as make_eval_set
from tests.jobs.conftest import swift_python, tiny  # noqa: F401  (fixtures)
from tests.roles.conftest import BIN, Run, ansible_playbook, node_image  # noqa: F401  (fixture)

SUBNET = ipaddress.ip_network(os.environ.get("SWIFTFLEET_E2E_SUBNET", "172.31.240.0/24"))
CLUSTER = {
    "provider": "local",
    "name": os.environ.get("SWIFTFLEET_E2E_NAME", "sfe2e"),
    "node_count": 2,
    "subnet": str(SUBNET),
}
RANK0_IP = str(SUBNET.network_address + local_cluster.FIRST_HOST)
# The controller's address on the cluster's bridge: the stand-in services the nodes reach (S3, the hub) listen here.
GATEWAY_IP = str(SUBNET.network_address + 1)
KEY = "e2e-key-5f1c9a"
CPU_ARGS = {"model_type": "qwen2", "template": "qwen", "torch_dtype": "float32"}
TRAIN_ARGS = {
    **CPU_ARGS,
    "tuner_type": "lora",
    "report_to": "none",
    "dataloader_num_workers": 0,
    "dataset_num_proc": 1,
    "check_model": False,
    "per_device_train_batch_size": 2,
    "logging_steps": 2,
}
SETUP_VARS = json.dumps({"ms_swift_extras": ["eval", "bnb", "app"]})


@dataclass
class Rehearsal:
    root: Path
    env: dict[str, str]
    tiny: Path

    @property
    def name(self) -> str:
        return str(CLUSTER["name"])

    @property
    def outputs(self) -> Path:
        return Path(self.env["SWIFTFLEET_OUTPUTS_DIR"])

    def rows(self, name: str, count: int) -> tuple[Path, list[dict[str, Any]]]:
        """The tiny chat set's first `count` rows, as a file of its own (a data-parallel job's input) and as read."""
        inputs = [json.loads(line) for line in (self.tiny / "chat.jsonl").read_text().splitlines()[:count]]
        path = self.root / f"{name}.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in inputs))
        return path, inputs

    def job(self, **job: Any) -> Path:
        path = self.root / f"{job['name']}.yml"
        path.write_text(yaml.safe_dump({"job": job}))
        return path

    def argv(self, playbook: str, job: Path, *extra: str) -> list[str]:
        return [
            "-i", str(inventory_path(self.name)), str(REPO / "playbooks" / playbook),
            "-e", f"@{job}", "-e", "poll_seconds=3", *extra,
        ]  # fmt: skip

    def play(self, playbook: str, job: Path, *extra: str) -> Run:
        return ansible_playbook(*self.argv(playbook, job, *extra), env=self.env)

    def start(self, playbook: str, job: Path, log: Path) -> subprocess.Popen[bytes]:
        """The playbook in the background, its output in log, in its own process group (a test may end it)."""
        with log.open("wb") as out:
            return subprocess.Popen(
                [str(BIN / "ansible-playbook"), *self.argv(playbook, job)],
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "NO_COLOR": "1", **self.env},
            )  # fmt: skip

    def setup(self, extra_vars: str = SETUP_VARS) -> Run:
        return ansible_playbook(
            "-i", str(inventory_path(self.name)), str(REPO / "playbooks" / "setup.yml"), "-e", extra_vars,
            env=self.env,
        )  # fmt: skip

    def node(self, rank: int, *argv: str) -> str:
        name = local_cluster.container_name(self.name, rank)
        done = subprocess.run(["docker", "exec", name, *argv], capture_output=True, text=True, check=False)
        return done.stdout

    def unit_states(self, job: str) -> list[str]:
        """`systemctl is-active` of the job's unit on rank 0 and rank 1."""
        return [
            self.node(rank, "systemctl", "is-active", f"swiftfleet-{job}-rank{rank}.service").strip()
            for rank in (0, 1)
        ]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that lose a node of the session's cluster run after every other e2e test: nothing after them needs the
    cluster as the session set it up, so none has to restore it (a set-up node costs minutes)."""
    here = Path(__file__).parent
    losing = [item for item in items if item.path.parent == here and "loses_node" in item.keywords]
    rest = [item for item in items if item not in losing]
    after = max((i + 1 for i, item in enumerate(rest) if item.path.parent == here), default=0)
    items[:] = [*rest[:after], *losing, *rest[after:]]


@pytest.fixture(scope="session")
def rehearsal(tmp_path_factory: pytest.TempPathFactory, node_image: str, tiny: Path) -> Iterator[Rehearsal]:  # noqa: F811
    """The cluster up (not yet set up), torn down at the end of the session."""
    root = tmp_path_factory.mktemp("e2e")
    env = {
        "SWIFTFLEET_INVENTORY_DIR": str(root / "inventory"),
        "SWIFTFLEET_STATE_DIR": str(root / "state"),
        "SWIFTFLEET_OUTPUTS_DIR": str(root / "outputs"),
        "SWIFT_API_KEY": KEY,
    }
    config = root / "cluster.yml"
    config.write_text(yaml.safe_dump(CLUSTER))
    make_eval_set(tiny / "eval.jsonl", root / "evalset")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        mp.delenv("SWIFTFLEET_CLUSTER", raising=False)
        clear_local_cluster(str(CLUSTER["name"]))
        try:
            up = run_cli("cluster", "up", "--config", str(config), env=env)
            assert up.returncode == 0, up.stdout + up.stderr
            yield Rehearsal(root, env, tiny)
        finally:
            run_cli("cluster", "down", "--config", str(config), "--force", env=env)  # a server may still run


@pytest.fixture(scope="session")
def setup_runs(rehearsal: Rehearsal) -> tuple[Run, Run, Run]:
    """setup.yml on both nodes three times: the first installs; the second runs every role again
    (setup_force) and must change nothing; the third finds every node current and runs no role (test_rehearsal
    asserts all three)."""
    first = rehearsal.setup()
    print(f"setup.yml (2 nodes, with evalscope), first run: {first.seconds:.0f} s")
    second = rehearsal.setup(json.dumps({**json.loads(SETUP_VARS), "setup_force": True}))
    print(f"setup.yml (2 nodes), second run, every role: {second.seconds:.0f} s")
    third = rehearsal.setup()
    print(f"setup.yml (2 nodes), third run, fingerprints current: {third.seconds:.0f} s")
    return first, second, third


@pytest.fixture
def installed(rehearsal: Rehearsal, setup_runs: tuple[Run, Run, Run]) -> Rehearsal:
    """The cluster with the CPU stack on every node; a failed setup fails here, with its output."""
    first = setup_runs[0]
    if first.rc != 0:
        pytest.fail(f"setup.yml failed, so no job can run:\n{first.output[-3000:]}")
    return rehearsal
