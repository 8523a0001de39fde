"""A hosts-file cluster made of a local cluster's containers, treated as machines made some other way."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from swiftfleet.inventory import inventory_path, known_hosts_path, read_inventory
from tests.conftest import run_cli
from tests.local.conftest import LocalEnv

pytestmark = pytest.mark.docker
SUDO_USER = (
    "id ops >/dev/null 2>&1 || useradd -m -s /bin/bash ops; "
    "echo 'ops ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/ops; "
    "install -d -m 700 -o ops -g ops /home/ops/.ssh; "
    "echo '{pub}' > /home/ops/.ssh/authorized_keys; chown ops:ops /home/ops/.ssh/authorized_keys"
)


def test_own_hosts_cluster_pins_keys_once_and_checks(local3: LocalEnv, tmp_path: Path) -> None:
    local3.up()
    # Log in as a sudo user, as on most machines made elsewhere (the check's listener then needs become).
    pub = (known_hosts_path("sft3").parent / "id_ed25519.pub").read_text().strip()
    for rank in range(3):
        local3.sh(rank, SUDO_USER.format(pub=pub))
    # The key beside the hosts file, named relatively; the machines listed out of rank order, no ranks given:
    # the first machine listed (node 2) is rank 0.
    shutil.copy2(known_hosts_path("sft3").parent / "id_ed25519", tmp_path / "login_key")
    order = [2, 0, 1]
    hosts = {"hosts": [{"address": local3.ip(r), "user": "ops", "key": "login_key"} for r in order]}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(hosts))
    config = tmp_path / "own.yml"
    config.write_text(yaml.safe_dump({"provider": "hosts", "name": "sfthosts", "hosts_file": "hosts.yml"}))

    up = run_cli("cluster", "up", "--config", str(config), env=local3.env)
    assert up.returncode == 0, up.stderr
    assert up.stderr.count("pinned ED25519 host key SHA256:") == 3
    cluster = read_inventory("sfthosts")
    assert cluster.provider == "hosts"
    assert {n.ssh_user for n in cluster.nodes} == {"ops"}
    assert [(n.rank, n.ansible_host) for n in cluster.nodes] == [
        (i, local3.ip(r)) for i, r in enumerate(order)
    ]
    assert cluster.master_addr == local3.ip(2)
    # ssh-keyscan over the network found exactly the keys that docker exec read inside the nodes.
    pinned = known_hosts_path("sfthosts").read_text()
    assert sorted(pinned.splitlines()) == sorted(known_hosts_path("sft3").read_text().splitlines())

    check = run_cli("check", "--json", "--config", str(config), env=local3.env)
    assert check.returncode == 0, check.stdout + check.stderr
    report = json.loads(check.stdout)
    assert report["master_addr"] == local3.ip(2)
    assert [(n["rank"], n["address"], n["reachable"], n["reaches_rank0"]) for n in report["nodes"]] == [
        (i, local3.ip(r), True, True) for i, r in enumerate(order)
    ]

    # Pinned once: a machine whose key changed is not scanned again on the next `cluster up`, it is refused.
    local3.sh(0, "rm /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && systemctl restart ssh")
    again = run_cli("cluster", "up", "--config", str(config), env=local3.env)
    assert again.returncode == 0, again.stderr
    assert "pinned" not in again.stderr
    assert known_hosts_path("sfthosts").read_text() == pinned
    refused = local3.ssh(0, known_hosts=known_hosts_path("sfthosts"))
    assert refused.returncode == 255
    assert "Host key verification failed" in refused.stderr

    # `cluster down` forgets the machines and leaves them running.
    down = run_cli("cluster", "down", "--config", str(config), env=local3.env)
    assert down.returncode == 0, down.stderr
    assert not inventory_path("sfthosts").exists()
    assert not known_hosts_path("sfthosts").parent.exists()
    assert all(local3.node(r).status == "running" for r in range(3))
    local3.up()  # re-pins node 0's new keys for the local cluster's own inventory


def test_wrong_master_addr_fails_the_rendezvous_probe(local3: LocalEnv, tmp_path: Path) -> None:
    """Rank 0 listed with a private IP it does not have (the classic MASTER_ADDR mistake): SSH works, the
    rendezvous probe does not. The IP is a free one on the test cluster's own bridge."""
    local3.up()
    key = str(known_hosts_path("sft3").parent / "id_ed25519")
    wrong = str(local3.spec.subnet.network_address + 99)
    machines = [
        {"address": local3.ip(0), "user": "root", "key": key, "private_ip": wrong},
        {"address": local3.ip(1), "user": "root", "key": key},
    ]
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"hosts": machines}))
    config = tmp_path / "own.yml"
    config.write_text(yaml.safe_dump({"provider": "hosts", "name": "sftwrong", "hosts_file": "hosts.yml"}))
    assert run_cli("cluster", "up", "--config", str(config), env=local3.env).returncode == 0
    try:
        check = run_cli("check", "--json", "--config", str(config), env=local3.env)
    finally:
        run_cli("cluster", "down", "--config", str(config), env=local3.env)
    assert check.returncode == 2, check.stdout + check.stderr
    report = json.loads(check.stdout)
    assert report["master_addr"] == wrong
    assert [(n["reachable"], n["reaches_rank0"]) for n in report["nodes"]] == [(True, False), (True, False)]
    assert all(any(p.startswith("cannot reach rank 0 (29500/tcp): not reached") for p in n["problems"])
               for n in report["nodes"])  # fmt: skip
