"""The cluster lock and the running-job guard on a real local cluster: two `cluster up` at once, `cluster down`
while a job unit runs on a node (asked over SSH), and playbooks refused while another command holds the cluster."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml

from swiftfleet import local_cluster, lock
from swiftfleet.inventory import inventory_path
from swiftfleet.settings import LocalCluster
from tests.conftest import REPO, clear_local_cluster, start_cli

pytestmark = pytest.mark.docker

NAME = "sflock"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A cluster file for a 2-node cluster of this module's own (inventory and state in a temporary directory);
    the cluster is taken down at the end whatever the tests left."""
    root = tmp_path_factory.mktemp("lock")
    spec = LocalCluster(name=NAME, node_count=2, subnet="172.30.214.0/24")  # type: ignore[arg-type]
    path = root / "cluster.yml"
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SWIFTFLEET_INVENTORY_DIR", str(root / "inventory"))
        mp.setenv("SWIFTFLEET_STATE_DIR", str(root / "state"))
        mp.delenv("SWIFTFLEET_CLUSTER", raising=False)
        clear_local_cluster(NAME)
        try:
            yield path
        finally:
            local_cluster.down(spec)


def _containers() -> list[str]:
    found = docker.from_env().containers.list(all=True, filters={"label": f"{local_cluster.LABEL}={NAME}"})
    return sorted(c.name for c in found)


def test_two_ups_at_once_make_one_cluster_and_the_loser_names_the_winner(config: Path) -> None:
    first = start_cli("cluster", "up", "--config", str(config))
    deadline = time.monotonic() + 60
    while not lock.lock_file(NAME).exists():
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    second = start_cli("cluster", "up", "--config", str(config))
    _, err2 = second.communicate(timeout=120)
    _, err1 = first.communicate(timeout=300)
    assert first.returncode == 0, err1
    assert second.returncode == 2
    (line,) = err2.strip().splitlines()  # one line, no traceback
    assert line.startswith(f"swiftfleet: cluster '{NAME}' is busy: `cluster up` by ")
    assert f"(pid {first.pid})" in line
    assert _containers() == [f"swiftfleet-{NAME}-node0", f"swiftfleet-{NAME}-node1"]
    assert lock.holder(NAME) is None  # given back when the command ended


def test_playbooks_that_change_the_cluster_wait_for_its_lock(config: Path) -> None:
    """While another command holds the cluster, setup and train stop at once with its line; status does not lock."""
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import time; from swiftfleet import lock; lock.acquire({NAME!r}, 'cluster up'); "
         "print('held', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
        inventory = str(inventory_path(NAME))
        job = config.parent / "job.yml"
        job.write_text(
            yaml.safe_dump({"job": {"name": "t", "kind": "swift sft", "model": "Qwen/Qwen2.5-0.5B"}})
        )
        for playbook in ("setup.yml", "train.yml"):
            run = subprocess.run(
                [str(BIN / "ansible-playbook"), "-i", inventory, str(REPO / "playbooks" / playbook), "-e", f"@{job}"],
                cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
            assert run.returncode != 0
            assert f"cluster '{NAME}' is busy: `cluster up` by " in run.stdout, run.stdout[-2000:]
            assert f"(pid {holder.pid})" in run.stdout
            assert "TASK [uv" not in run.stdout and "Stage" not in run.stdout  # no node was touched
    finally:
        holder.kill()
        holder.wait()
    # A holder that died without giving the lock back holds nothing: the next command takes it over.
    assert lock.holder(NAME) is None
    lock.acquire(NAME, "test")
    lock.release(NAME)


def test_down_while_a_job_runs_refuses_without_a_terminal_and_force_goes_ahead(config: Path) -> None:
    up = start_cli("cluster", "up", "--config", str(config))
    assert up.wait(timeout=300) == 0
    # A job's rank as systemd runs it on the node (the unit name is what the kit's jobs use).
    node0 = docker.from_env().containers.get(local_cluster.container_name(NAME, 0))
    started = node0.exec_run(["systemd-run", "--unit", "swiftfleet-tiny-run-rank0", "sleep", "600"])
    assert started.exit_code == 0, started.output

    refused = start_cli("cluster", "down", "--config", str(config))
    _, err = refused.communicate(timeout=120)
    assert refused.returncode == 2
    (line,) = err.strip().splitlines()
    assert line == (
        f"swiftfleet: cluster '{NAME}' runs job tiny-run (rank 0 on {NAME}-node0): `cluster down` would end it; "
        "stop it first (make stop JOB=...) or add --force"
    )
    assert len(_containers()) == 2  # nothing was removed

    forced = start_cli("cluster", "down", "--config", str(config), "--force")
    _, err = forced.communicate(timeout=300)
    assert forced.returncode == 0, err
    assert f"--force: `cluster down` ends job tiny-run (rank 0 on {NAME}-node0)" in err
    assert _containers() == []
