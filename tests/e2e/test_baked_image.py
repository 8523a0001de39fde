"""A node of the session's set-up cluster baked into an image; a new one-node cluster started from it passes setup
with nothing to do (its fingerprint matches in the new cluster), with host keys and machine id of its own."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from swiftfleet import local_cluster
from swiftfleet.inventory import inventory_path
from swiftfleet.jobs.node_facts import facts_file
from tests.conftest import REPO, clear_local_cluster, run_cli
from tests.e2e.conftest import SETUP_VARS, Rehearsal
from tests.roles.conftest import ansible_playbook

pytestmark = [pytest.mark.docker, pytest.mark.swift]
BAKED_SUBNET = os.environ.get("SWIFTFLEET_E2E_BAKED_SUBNET", "172.31.245.0/24")
IDENTITY = ("/etc/ssh/ssh_host_ed25519_key.pub", "/etc/machine-id")


def _exec(container: str, *argv: str) -> str:
    return subprocess.run(
        ["docker", "exec", container, *argv], capture_output=True, text=True, check=True
    ).stdout


def test_a_node_from_a_baked_image_has_nothing_to_set_up(installed: Rehearsal, tmp_path: Path) -> None:
    name = f"{installed.name}-baked"
    tag = f"swiftfleet-baked:{name}-e2e"
    config = tmp_path / "baked.yml"
    config.write_text(
        yaml.safe_dump(
            {"provider": "local", "name": name, "node_count": 1, "subnet": BAKED_SUBNET, "image": tag}
        )
    )
    source = installed.root / "cluster.yml"
    env = installed.env
    unknown = run_cli("image", "bake", "--config", str(source), "--node", "2", env=env)
    assert (unknown.returncode, unknown.stderr) == (
        2, f"swiftfleet: cluster {installed.name!r} has no node 2 (its nodes: 0-1)\n"
    )  # fmt: skip
    old_job = "/root/swiftfleet/jobs/baked-e2e-old"  # a job directory of the source: not for the new node
    installed.node(0, "mkdir", "-p", old_job)
    try:
        bake = run_cli("image", "bake", "--config", str(source), "--node", "0", "--name", tag, env=env)
        installed.node(0, "rmdir", old_job)
        assert bake.returncode == 0, bake.stderr
        assert f"baked {installed.name}-node0 (setup fingerprint " in bake.stdout
        assert f"put `image: {tag}` in a cluster file" in bake.stdout
        listed = run_cli("image", "list", env=env)
        row = next(line.split() for line in listed.stdout.splitlines() if line.startswith(tag))
        assert row[1:3] == [installed.name, f"{installed.name}-node0"], listed.stdout

        clear_local_cluster(name)
        up = run_cli("cluster", "up", "--config", str(config), env=env)
        assert up.returncode == 0, up.stderr
        node = local_cluster.container_name(name, 0)
        for path in IDENTITY:  # made at the new node's boot, not copied from the source
            assert _exec(node, "cat", path) != installed.node(0, "cat", path), path
        assert (
            _exec(node, "ls", "-A", "/root/swiftfleet/jobs") == ""
        )  # the source's job directories stayed behind

        setup = ansible_playbook(
            "-i", str(inventory_path(name)), str(REPO / "playbooks" / "setup.yml"), "-e", SETUP_VARS, env=env
        )  # fmt: skip
        print(f"setup.yml on a node from the baked image: {setup.seconds:.0f} s")
        assert setup.rc == 0, setup.output[-3000:]
        recap = setup.recap()
        assert (recap[f"{name}-node0"]["changed"], recap[f"{name}-node0"]["failed"]) == (0, 0), recap
        assert f"setup: nothing to do on {name}-node0: each matches its last complete setup" in setup.output
        assert "TASK [uv : " not in setup.output and "TASK [ms_swift : " not in setup.output
        # localhost, not the node, changed: the new cluster's setup record on the controller (job plans read it)
        assert set(json.loads(facts_file(name).read_text())) == {f"{name}-node0"}
        assert recap["localhost"]["changed"] == 1
    finally:
        down = run_cli("cluster", "down", "--config", str(config), "--force", env=env)
        removed = run_cli("image", "rm", tag, env=env)
    assert down.returncode == 0, down.stderr
    assert (removed.returncode, removed.stdout) == (0, f"removed {tag}\n"), removed.stderr
    assert tag not in run_cli("image", "list", env=env).stdout
