"""A running AWS cluster is not lost to a second command: the cluster lock, the plan shown before a re-up changes
nodes, a failed apply that removes only what it made, and Ctrl-C during an apply. The real Terraform on moto."""

import io
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import click
import pytest

from swiftfleet import aws_cluster, lock, node_jobs, tf
from swiftfleet.errors import SwiftfleetError
from swiftfleet.inventory import read_inventory
from tests.aws.conftest import NOTHING, FaultProxy, aws_spec, cluster_file, default_subnet, leftovers
from tests.aws.conftest import live_instances as live
from tests.conftest import run_cli, start_cli

pytestmark = pytest.mark.moto


def _ids() -> set[str]:
    return {i["InstanceId"] for i in live()}


def test_two_concurrent_ups_make_one_cluster_and_the_loser_says_who_holds_it(
    aws: FaultProxy, ssh_key: Path, tmp_path: Path
) -> None:
    config = cluster_file(tmp_path / "c.yml", ssh_key, name="sf-race")
    first = start_cli("cluster", "up", "--config", str(config), "--yes")
    lock_file = lock.lock_file("sf-race")
    deadline = time.monotonic() + 120
    while not lock_file.exists():  # the first one holds the lock (before any Terraform runs)
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    second = start_cli("cluster", "up", "--config", str(config), "--yes")
    _, err2 = second.communicate(timeout=120)
    _, err1 = first.communicate(timeout=600)

    assert first.returncode == 0, err1
    assert second.returncode == 2
    (line,) = err2.strip().splitlines()
    assert line.startswith("swiftfleet: cluster 'sf-race' is busy: `cluster up` by ")
    assert f"(pid {first.pid})" in line
    assert len(live()) == 2 and len(read_inventory("sf-race").nodes) == 2
    assert not lock_file.exists()  # given back at the end

    down = run_cli("cluster", "down", "--config", str(config))
    assert down.returncode == 0, down.stderr
    assert leftovers() == NOTHING


def test_a_re_up_that_replaces_nodes_names_them_and_declining_changes_nothing(
    aws: FaultProxy,
    ssh_key: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = aws_spec(tmp_path / "c.yml", ssh_key, name="sf-replace")
    aws_cluster.up(spec, assume_yes=True)
    before = _ids()
    capsys.readouterr()

    # The same file again: moto reports the instances' group in another form than it was given, so its plan
    # updates that in place (real EC2 does not); no node is replaced and nothing is asked about replacing.
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    with pytest.raises(click.exceptions.Abort):
        aws_cluster.up(spec, assume_yes=False)
    shown = capsys.readouterr()
    assert "update in place: aws_instance.node[0] (vpc_security_group_ids)" in shown.err
    assert "replace:" not in shown.err and "REPLACES" not in shown.out

    spot = aws_spec(tmp_path / "spot.yml", ssh_key, name="sf-replace", spot=True)
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    with pytest.raises(click.exceptions.Abort):
        aws_cluster.up(spot, assume_yes=False)
    shown = capsys.readouterr()
    assert "replace: aws_instance.node[0]" in shown.err and "replace: aws_instance.node[1]" in shown.err
    assert "this REPLACES sf-replace-node0, sf-replace-node1 (their disks are lost)?" in shown.out
    assert _ids() == before

    # A job runs on node1 (as the nodes would answer over SSH; moto's instances have no sshd): without a
    # terminal the replacement is refused in one line naming it, and --force goes ahead.
    def one_job(cluster: object, nodes: list[object] | None = None) -> list[node_jobs.NodeJobs]:
        return [node_jobs.NodeJobs("sf-replace-node1", {"tiny": 1})]

    monkeypatch.setattr(node_jobs, "running", one_job)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(SwiftfleetError, match=r"runs job tiny \(rank 1 on sf-replace-node1\): `cluster up` replaces "
                       r"sf-replace-node0, sf-replace-node1 would end it; stop it first .* or add --force"):  # fmt: skip
        aws_cluster.up(spot, assume_yes=True)
    assert _ids() == before
    aws_cluster.up(spot, assume_yes=True, force=True)
    assert _ids().isdisjoint(before) and len(live()) == 2
    assert all(i.get("InstanceLifecycle") == "spot" for i in live())

    aws_cluster.down(spot)
    assert leftovers() == NOTHING


def test_a_failed_re_up_removes_only_what_it_created(aws: FaultProxy, ssh_key: Path, tmp_path: Path) -> None:
    spec = aws_spec(tmp_path / "c.yml", ssh_key, name="sf-grow")
    aws_cluster.up(spec, assume_yes=True)
    before = _ids()
    aws.failures[default_subnet("us-east-1a")] = "InsufficientInstanceCapacity"

    bigger = aws_spec(tmp_path / "big.yml", ssh_key, name="sf-grow", node_count=3)
    with pytest.raises(SwiftfleetError, match="the cluster in us-east-1a keeps what it had"):
        aws_cluster.up(bigger, assume_yes=True)
    assert _ids() == before  # the running nodes stay; the third never came
    assert tf.Workspace("sf-grow").outputs()["nodes"][1]["instance_id"] in before

    aws.failures.clear()
    aws_cluster.down(spec)
    assert leftovers() == NOTHING


def test_a_state_lock_held_elsewhere_destroys_nothing(
    aws: FaultProxy, ssh_key: Path, tmp_path: Path, terraform_copy: Path
) -> None:
    """Someone runs Terraform by hand in the cluster's workspace and waits at its prompt, holding the state lock:
    the kit's apply fails on the lock, and nothing of that workspace is destroyed."""
    spec = aws_spec(tmp_path / "c.yml", ssh_key, name="sf-held")
    ws = tf.Workspace("sf-held")
    ws.init()
    ws.select()
    env = {**os.environ, "TF_WORKSPACE": "sf-held"}
    vars_file = tmp_path / "v.tfvars.json"
    vars_file.write_text(json.dumps(aws_cluster.variables(spec, "us-east-1a")))
    by_hand = subprocess.Popen(
        ["terraform", "apply", "-input=true", f"-var-file={vars_file}"], cwd=terraform_copy, env=env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    seen: list[str] = []
    out = by_hand.stdout
    assert out is not None
    # The prompt ends without a newline: read what comes, not lines.
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: out.read(1), "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 300  # init, refresh and plan first: slow on a loaded 2-core machine
    while "Enter a value" not in "".join(seen):
        assert by_hand.poll() is None and time.monotonic() < deadline, "".join(seen)
        time.sleep(0.5)
    try:
        with pytest.raises(SwiftfleetError, match="Error acquiring the state lock"):
            aws_cluster.up(spec, assume_yes=True)
        assert aws.run_instances == []
    finally:
        assert by_hand.stdin is not None
        by_hand.stdin.write("no\n")
        by_hand.stdin.close()
        by_hand.wait(timeout=60)
    assert leftovers() == NOTHING


def test_ctrl_c_during_apply_lets_terraform_save_and_says_what_exists(
    aws: FaultProxy, ssh_key: Path, tmp_path: Path
) -> None:
    config = cluster_file(tmp_path / "c.yml", ssh_key, name="sf-intr")
    proc = start_cli("cluster", "up", "--config", str(config), "--yes")
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(proc.stderr or []), daemon=True)
    reader.start()
    deadline = time.monotonic() + 300
    while not any("Creating..." in line for line in err):
        assert proc.poll() is None and time.monotonic() < deadline, "".join(err)
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)  # a terminal's Ctrl-C: Terraform runs in its own session, only we get it
    assert proc.wait(timeout=300) == 2
    reader.join(timeout=10)
    text = "".join(err)
    assert "interrupted: Terraform finishes the operations under way and saves its state" in text
    last = text.strip().splitlines()[-1]
    assert last.startswith("swiftfleet: interrupted in us-east-1a: Terraform finished what it had started")
    assert "`cluster down` removes it" in last
    # What Terraform made before it stopped is in its state, so down finds and removes it.
    ws = tf.Workspace("sf-intr")
    ws.select()
    in_state = {r["values"]["id"] for r in ws.resources() if r["type"] == "aws_instance"}
    assert _ids() == in_state
    down = run_cli("cluster", "down", "--config", str(config))
    assert down.returncode == 0, down.stderr
    assert leftovers() == NOTHING
