"""The local cluster over real SSH: fixed IPs, pinned host keys, the check report, and a clean teardown."""

import json
import subprocess

import docker
import pytest

from swiftfleet import local_cluster
from swiftfleet.inventory import inventory_path, known_hosts_path, read_inventory
from tests.conftest import run_cli
from tests.local.conftest import LocalEnv

pytestmark = pytest.mark.docker
FAKE_GPU = '#!/bin/sh\necho "NVIDIA A10G, 23028 MiB, 535.183.01"\n'


def _forward_rules(cluster: str) -> list[str]:
    rules = subprocess.run(
        ["iptables", "-w", "-S", "DOCKER-USER"], capture_output=True, text=True, check=True
    )
    return [r for r in rules.stdout.splitlines() if f"swiftfleet-{cluster} " in r + " "]


def _check(local3: LocalEnv, *extra: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    res = run_cli("check", "--config", str(local3.config), *extra, env=local3.env)
    report = json.loads((known_hosts_path(local3.spec.name).parent / "check.json").read_text())
    return res.returncode, report, res.stdout + res.stderr


def test_up_gives_ranked_nodes_at_fixed_ips_with_pinned_keys(local3: LocalEnv) -> None:
    cluster = local3.up()
    assert read_inventory("sft3") == cluster
    assert [(n.name, n.rank, n.ansible_host, str(n.private_ip)) for n in cluster.nodes] == [
        (f"sft3-node{r}", r, local3.ip(r), local3.ip(r)) for r in range(3)
    ]
    assert cluster.master_addr == "172.30.213.10"
    assert {(n.gpu_count, n.instance_type, n.ssh_user) for n in cluster.nodes} == {(0, "local", "root")}
    assert "StrictHostKeyChecking=yes" in inventory_path("sft3").read_text()

    pinned = known_hosts_path("sft3").read_text().splitlines()
    ed25519 = set()
    for rank in range(3):
        key = local3.sh(rank, "cat /etc/ssh/ssh_host_ed25519_key.pub").split()[1]
        assert f"{local3.ip(rank)} ssh-ed25519 {key}" in pinned
        ed25519.add(key)
    assert len(ed25519) == 3, "every node must make its own host keys (none in the image)"

    for rank in range(3):
        node = local3.node(rank)
        assert node.attrs["HostConfig"]["Privileged"] is False
        assert node.attrs["HostConfig"]["CgroupnsMode"] == "host"
        assert node.labels[local_cluster.LABEL] == "sft3"
        assert local3.sh(rank, "cat /proc/1/comm").strip() == "systemd"
    assert len(_forward_rules("sft3")) == 1


def test_up_again_is_a_noop(local3: LocalEnv) -> None:
    local3.up()
    ids = [local3.node(r).id for r in range(3)]
    inventory, pinned = inventory_path("sft3").read_text(), known_hosts_path("sft3").read_text()
    res = run_cli("cluster", "up", "--config", str(local3.config), env=local3.env)
    assert res.returncode == 0, res.stderr
    assert "starting" not in res.stderr
    assert [local3.node(r).id for r in range(3)] == ids
    assert inventory_path("sft3").read_text() == inventory
    assert known_hosts_path("sft3").read_text() == pinned
    assert len(_forward_rules("sft3")) == 1


def test_check_reports_every_node_ready_over_ssh(local3: LocalEnv) -> None:
    local3.up()
    # A stand-in nvidia-smi on one node: the report must carry what the node's driver says, per node.
    local3.sh(2, f"printf '{FAKE_GPU}' > /usr/bin/nvidia-smi && chmod +x /usr/bin/nvidia-smi")
    try:
        res = run_cli("check", "--json", "--config", str(local3.config), env=local3.env)
    finally:
        local3.sh(2, "rm -f /usr/bin/nvidia-smi")
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads(res.stdout)
    assert report["healthy"] is True
    assert report["master_addr"] == local3.ip(0)
    nodes = report["nodes"]
    assert [(n["node"], n["rank"], n["reachable"], n["reaches_rank0"]) for n in nodes] == [
        (f"sft3-node{r}", r, True, True) for r in range(3)
    ]
    assert [n["gpus"] for n in nodes] == [[], [], [{"name": "NVIDIA A10G", "memory": "23028 MiB"}]]
    assert [n["driver"] for n in nodes] == [None, None, "535.183.01"]
    # The temporary rendezvous listener is gone again.
    assert "29500" not in local3.sh(0, "ss -Htln")


def test_check_reports_a_node_without_sshd_unreachable(local3: LocalEnv) -> None:
    local3.up()
    local3.sh(1, "systemctl stop ssh")
    try:
        rc, report, output = _check(local3)
    finally:
        local3.sh(1, "systemctl start ssh")
    assert rc == 2, output
    assert "check failed" in output
    assert "NOT ready" in output
    by_rank = {n["rank"]: n for n in report["nodes"]}
    assert by_rank[1]["reachable"] is False
    assert "Connection refused" in by_rank[1]["problems"][0]
    assert all(by_rank[r]["reachable"] and by_rank[r]["reaches_rank0"] for r in (0, 2))
    assert report["healthy"] is False


def test_changed_host_key_is_refused(local3: LocalEnv) -> None:
    local3.up()
    assert local3.ssh(2).returncode == 0
    local3.sh(2, "rm /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && systemctl restart ssh")
    direct = local3.ssh(2)
    assert direct.returncode == 255
    assert "Host key verification failed" in direct.stderr

    rc, report, output = _check(local3)
    assert rc == 2, output
    node2 = report["nodes"][2]
    assert node2["reachable"] is False
    assert node2["problems"] == ["unreachable: host key changed (refused: not the pinned key)"]
    assert "Host key verification failed" in node2["login_error"]
    assert all(n["reachable"] for n in report["nodes"][:2])

    # `cluster up` reads the keys again over docker exec (a trusted channel) and pins the new ones.
    local3.up()
    assert local3.ssh(2).returncode == 0


def test_down_leaves_nothing_behind(local3: LocalEnv) -> None:
    local3.up()
    client = docker.from_env()
    res = run_cli("cluster", "down", "--config", str(local3.config), env=local3.env)
    assert res.returncode == 0, res.stderr
    assert client.containers.list(all=True, filters={"label": f"{local_cluster.LABEL}=sft3"}) == []
    assert [n.name for n in client.networks.list() if n.name == "swiftfleet-sft3"] == []
    assert _forward_rules("sft3") == []
    assert not inventory_path("sft3").exists()
    assert not known_hosts_path("sft3").parent.exists()
    # Again, with nothing left to remove.
    assert run_cli("cluster", "down", "--config", str(local3.config), env=local3.env).returncode == 0
