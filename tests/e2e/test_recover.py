"""Checkpoints leave the nodes while the job trains (playbooks/tasks/stream.yml), and a lost node costs only the
steps since the last one: rank 0's container is removed with its disk (a lost instance) once a checkpoint is safe
on the controller; `swiftfleet train` (recover: true) brings the cluster back, sets the new node up and resumes from
the newest checkpoint that left the nodes complete, which goes up with the job to every node. The run finishes and
its step count goes on from that checkpoint. Runs after every other e2e test (loses_node): nothing needs the
session's cluster as it was afterwards.

Prints the checkpoint lag (written on the node -> marked on the controller; median over the run's checkpoints)
and the time from the node's loss to training again."""

import json
import os
import re
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from swiftfleet import local_cluster
from swiftfleet.jobs import checkpoints
from tests.conftest import REPO, SWIFTFLEET
from tests.e2e.conftest import TRAIN_ARGS, Rehearsal

pytestmark = [pytest.mark.docker, pytest.mark.swift, pytest.mark.loses_node]

STEPS = 60  # about a minute on an idle machine: the first checkpoint is safe well before the end
SAVE_STEPS = 5
NAME = "tiny-recover"


def _step(entry: dict[str, object]) -> int | None:
    found = re.match(r"(\d+)/", str(entry.get("global_step/max_steps", "")))
    return int(found[1]) if found else None


def _markers(out_dir: Path) -> dict[int, dict[str, Any]]:
    """step -> marker of every checkpoint copied complete to the controller."""
    found = (out_dir / "output").glob(f"*/checkpoint-*/{checkpoints.MARKER}")
    return {checkpoints.step_of(str(m.parent)) or 0: json.loads(m.read_text()) for m in found}


def test_a_lost_rank0_node_comes_back_and_the_run_resumes_where_it_left(installed: Rehearsal) -> None:
    job = installed.job(
        name=NAME, kind="swift sft", model=str(installed.tiny / "model"),
        datasets=[str(installed.tiny / "chat.jsonl")], nproc_per_node=1, recover=True,
        args={**TRAIN_ARGS, "max_steps": STEPS, "save_steps": SAVE_STEPS, "logging_steps": 1},
        env={"CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    out_dir = installed.outputs / NAME
    log = installed.root / "recover.log"
    env = {**os.environ, **installed.env, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    argv = [
        *SWIFTFLEET,
        "train",
        str(job),
        "--config",
        str(installed.root / "cluster.yml"),
        "-e",
        "poll_seconds=3",
    ]
    try:
        with log.open("w") as sink:
            proc = subprocess.Popen(
                argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink
            )
        deadline = time.monotonic() + 900
        while (saved := checkpoints.latest_complete(out_dir)) is None:  # a checkpoint has left the nodes
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        lost_at = time.monotonic()
        subprocess.run(
            ["docker", "rm", "-f", local_cluster.container_name(installed.name, 0)],
            check=True,
            capture_output=True,
        )
        # Training again: a progress line printed after the relaunch.
        while not re.search(r"starting the job again(.|\n)*step \d+/", log.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        back = time.monotonic() - lost_at
        rc = proc.wait(timeout=900)
    finally:
        proc.kill()
    text = log.read_text()
    assert rc == 0, text[-4000:]
    assert f"job tiny-recover: lost {installed.name}-node0 (" in text and "recovery 1 of 3" in text
    assert f"resuming from {saved}" in text

    # The resumed run's first logged step follows the checkpoint it started from, and it reached the end.
    runs = sorted((out_dir / "output").glob("v*-*"), key=lambda p: p.stat().st_mtime)
    logged = [
        json.loads(line) for line in (runs[-1] / "logging.jsonl").read_text().splitlines() if line.strip()
    ]
    steps = [s for s in map(_step, logged) if s is not None]
    k = checkpoints.step_of(str(saved)) or 0
    assert steps[0] == k + 1, steps[:5]
    assert steps[-1] == STEPS
    assert (runs[-1] / f"checkpoint-{STEPS}" / "trainer_state.json").is_file()
    # The streamed checkpoint went up with the job to every node, the new one too.
    for rank in (0, 1):
        assert installed.node(rank, "ls", f"/root/swiftfleet/jobs/{NAME}/resume").split() == [
            f"checkpoint-{k}"
        ]
    # Every checkpoint of both runs left the nodes, each named in the watch's output with its lag.
    markers = _markers(out_dir)
    assert set(range(SAVE_STEPS, STEPS + 1, SAVE_STEPS)) <= set(markers), sorted(markers)
    for step in markers:
        assert f"checkpoint-{step} safe at " in text
    assert "s (written on the node -> safe)" in text
    final = checkpoints.latest_complete(out_dir)
    assert final is not None and checkpoints.step_of(str(final)) == STEPS
    lags = [m["lag_seconds"] for m in markers.values()]
    print(
        f"checkpoint lag (written on the node -> safe on the controller): median {statistics.median(lags):.1f} s "
        f"over {len(lags)} checkpoints (min {min(lags):.1f}, max {max(lags):.1f}); node loss -> training again: "
        f"{back:.0f} s; resumed from checkpoint-{k}"
    )
