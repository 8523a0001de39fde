"""The TTL and idle stop on real nodes: a job that would outlive a node's TTL is refused in one line before
anything starts, `cluster ttl` moves the deadline over SSH, and a node with `idle_stop_minutes: 1` really powers
off (its container exits) once no job unit runs and no one is logged in.

The TTL is the aws one, installed on the local nodes exactly as cloud-init does from
terraform/templates/ttl.cloud-config.tftpl (its files and its commands). The power-off runs on a 1-node
cluster of its own (SWIFTFLEET_E2E_IDLE_SUBNET, default 172.30.X.0/28 for the rehearsal's 172.31.X.0/24), so
the shared cluster keeps its nodes."""

import ipaddress
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from swiftfleet import local_cluster
from tests.conftest import REPO, clear_local_cluster, run_cli
from tests.e2e.conftest import CLUSTER, SUBNET, TRAIN_ARGS, Rehearsal
from tests.roles.conftest import ansible_playbook

pytestmark = pytest.mark.docker

IDLE_SUBNET = ipaddress.ip_network(
    os.environ.get("SWIFTFLEET_E2E_IDLE_SUBNET", f"172.30.{SUBNET.network_address.packed[2]}.0/28")
)
TTL_UNITS = ["swiftfleet-ttl.timer", "swiftfleet-ttl.service"]
TTL_FILES = [
    "/usr/local/sbin/swiftfleet-ttl-check",
    "/etc/systemd/system/swiftfleet-ttl.service",
    "/etc/systemd/system/swiftfleet-ttl.timer",
    "/etc/swiftfleet/ttl-deadline",
]


def _exec(container: str, *argv: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["docker", "exec", "-i", container, *argv], input=stdin, capture_output=True, text=True, check=True
    )
    return done.stdout


def _install_aws_ttl(container: str, hours: int) -> None:
    """What cloud-init does with the aws nodes' user data: write its files, run its commands."""
    text = (REPO / "terraform" / "templates" / "ttl.cloud-config.tftpl").read_text()
    config = yaml.safe_load(text.replace("${ttl_hours}", str(hours)))
    for item in config["write_files"]:
        path = item["path"]
        _exec(container, "mkdir", "-p", str(Path(path).parent))
        _exec(container, "sh", "-c", f"cat > {path}", stdin=item["content"])
        _exec(container, "chmod", item.get("permissions", "0644"), path)
    for argv in config["runcmd"]:
        _exec(container, *argv)


def _deadline(container: str) -> int:
    return int(_exec(container, "cat", "/etc/swiftfleet/ttl-deadline"))


@pytest.fixture
def aws_ttl(installed: Rehearsal) -> Iterator[Rehearsal]:
    """The aws TTL on both nodes of the shared cluster: 3 h on rank 0, 1 h on rank 1; removed afterwards."""
    containers = [local_cluster.container_name(installed.name, rank) for rank in (0, 1)]
    for container, hours in zip(containers, (3, 1), strict=True):
        _install_aws_ttl(container, hours)
    try:
        yield installed
    finally:
        for container in containers:
            _exec(container, "systemctl", "disable", "--now", *TTL_UNITS)
            _exec(container, "rm", "-f", *TTL_FILES)
            _exec(container, "systemctl", "daemon-reload")


def test_time_limit_past_the_ttl_is_refused_then_the_ttl_moves(aws_ttl: Rehearsal) -> None:
    r = aws_ttl
    job = r.job(
        name="ttl-long", kind="swift sft", model=str(r.tiny / "model"), datasets=[str(r.tiny / "chat.jsonl")],
        nproc_per_node=1, args=TRAIN_ARGS, time_limit="2h",
    )  # fmt: skip
    run = r.play("train.yml", job)
    assert run.rc != 0
    failed = [line for line in run.output.splitlines() if line.startswith("fatal: ")]
    assert len(failed) == 1, run.output[-3000:]
    # One line naming the node with the least TTL, what is left, and how to extend it.
    message = json.loads(failed[0].split(" => ", 1)[1])["msg"]
    assert message.startswith(
        f"job ttl-long: time_limit 2h is longer than the TTL left on {r.name}-node1 (59m, until "
    )
    assert message.endswith("`make cluster-ttl HOURS=3` (swiftfleet cluster ttl --hours 3)")
    assert "\n" not in message
    for rank in (0, 1):  # nothing was staged or started
        assert "ttl-long" not in r.node(rank, "ls", "/root/swiftfleet/jobs")
        assert "ttl-long" not in r.node(rank, "ls", "/etc/systemd/system")

    before = time.time()
    moved = run_cli("cluster", "ttl", "--hours", "5", "--config", str(r.root / "cluster.yml"), env=r.env)
    print(f"cluster ttl --hours 5: {time.time() - before:.0f} s")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    for rank in (0, 1):
        container = local_cluster.container_name(r.name, rank)
        assert abs(_deadline(container) - (before + 5 * 3600)) < 120
        assert f"{r.name}-node{rank}" in moved.stdout
    assert "4h59m" in moved.stdout or "5h00m" in moved.stdout

    # Now 4h fits: the same kind of job passes the check and trains.
    fits = r.job(
        name="ttl-fits", kind="swift sft", model=str(r.tiny / "model"), datasets=[str(r.tiny / "chat.jsonl")],
        nproc_per_node=1, args={**TRAIN_ARGS, "max_steps": 2, "save_steps": 2}, env={"CUDA_VISIBLE_DEVICES": ""},
        time_limit="4h",
    )  # fmt: skip
    trained = r.play("train.yml", fits)
    print(f"train.yml (2 nodes, 2 steps, time_limit 4h within the TTL): {trained.seconds:.0f} s")
    assert trained.rc == 0, trained.output[-3000:]
    assert "longer than the TTL" not in trained.output


def test_cluster_ttl_refuses_nodes_without_a_ttl(installed: Rehearsal) -> None:
    refused = run_cli(
        "cluster", "ttl", "--hours", "2", "--config", str(installed.root / "cluster.yml"), env=installed.env
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"swiftfleet: cluster ttl: {installed.name}-node0, {installed.name}-node1: no TTL "
        "(/etc/swiftfleet/ttl-deadline): aws nodes get one at first boot (ttl_hours); local and hosts nodes have "
        "none to extend"
    ]


def test_idle_node_powers_off(tmp_path: Path, node_image: str, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"{CLUSTER['name']}-idle"
    config = tmp_path / "cluster.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "provider": "local",
                "name": name,
                "node_count": 1,
                "subnet": str(IDLE_SUBNET),
                "idle_stop_minutes": 1,
            }
        )
    )
    env = {
        "SWIFTFLEET_INVENTORY_DIR": str(tmp_path / "inventory"),
        "SWIFTFLEET_STATE_DIR": str(tmp_path / "state"),
    }
    container = local_cluster.container_name(name, 0)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    clear_local_cluster(name)
    try:
        up = run_cli("cluster", "up", "--config", str(config), env=env)
        assert up.returncode == 0, up.stdout + up.stderr
        inventory = Path(env["SWIFTFLEET_INVENTORY_DIR"]) / f"{name}.yml"
        group = yaml.safe_load(inventory.read_text())["all"]["children"][name.replace("-", "_")]
        assert group["vars"]["swiftfleet_idle_stop_minutes"] == 1
        playbook = tmp_path / "idle.yml"
        playbook.write_text(
            yaml.safe_dump(
                [{"name": "Idle stop", "hosts": "all", "gather_facts": False, "roles": ["idle_stop"]}]
            )
        )
        # No SSH master connection left behind: the node is idle as soon as the play ends.
        applied = ansible_playbook(
            "-i", str(inventory), str(playbook), env={**env, "ANSIBLE_SSH_ARGS": "-o ControlMaster=no"}
        )
        assert applied.rc == 0, applied.output[-3000:]
        assert _exec(container, "systemctl", "is-active", "swiftfleet-idle-stop.timer").strip() == "active"
        assert _exec(container, "swiftfleet-idle-check", "--dry-run").startswith("idle: ")
        started = time.monotonic()
        while time.monotonic() - started < 150:
            state = subprocess.run(
                ["docker", "inspect", "-f", "{{.State.Running}}", container],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            if state == "false":
                break
            time.sleep(3)
        print(f"idle node powered off {time.monotonic() - started:.0f} s after the play")
        assert state == "false", "the idle node still runs 150 s after the play"
    finally:
        run_cli("cluster", "down", "--config", str(config), env=env)
