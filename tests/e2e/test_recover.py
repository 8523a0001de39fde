"""A lost node mid-run on the local cluster: rank 0's container is removed while the job trains; `swiftfleet train`
(recover: true) brings the cluster back, sets the new node up and resumes from the newest checkpoint that left the
nodes complete. The run finishes and its step count goes on from that checkpoint."""

import json
import os
import re
import subprocess
import time

import pytest

from swiftfleet import local_cluster
from swiftfleet.jobs import checkpoints
from tests.conftest import REPO, SWIFTFLEET, run_cli
from tests.e2e.conftest import TRAIN_ARGS, Rehearsal

pytestmark = [pytest.mark.docker, pytest.mark.swift]

STEPS = 60  # about a minute on an idle machine: the first checkpoint is safe well before the end


def _step(entry: dict[str, object]) -> int | None:
    found = re.match(r"(\d+)/", str(entry.get("global_step/max_steps", "")))
    return int(found[1]) if found else None


def test_a_lost_rank0_node_comes_back_and_the_run_resumes_where_it_left(installed: Rehearsal) -> None:
    job = installed.job(
        name="tiny-recover", kind="swift sft", model=str(installed.tiny / "model"),
        datasets=[str(installed.tiny / "chat.jsonl")], nproc_per_node=1, recover=True,
        args={**TRAIN_ARGS, "max_steps": STEPS, "save_steps": 5, "logging_steps": 1},
        env={"CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    out_dir = installed.outputs / "tiny-recover"
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
        # Whatever happened, the session's cluster is whole again, with the session's extras, for later tests.
        run_cli("cluster", "up", "--config", str(installed.root / "cluster.yml"), env=installed.env)
        installed.setup()
    text = log.read_text()
    assert rc == 0, text[-4000:]
    assert f"job tiny-recover: lost {installed.name}-node0 (" in text and "recovery 1 of 3" in text
    assert f"resuming from {saved}" in text
    print(f"node loss -> training again: {back:.0f} s (checkpoint {saved.name} saved before the loss)")

    # The resumed run's first logged step follows the checkpoint it started from, and it reached the end.
    runs = sorted((out_dir / "output").glob("v*-*"), key=lambda p: p.stat().st_mtime)
    logged = [
        json.loads(line) for line in (runs[-1] / "logging.jsonl").read_text().splitlines() if line.strip()
    ]
    steps = [s for s in map(_step, logged) if s is not None]
    resumed_from = checkpoints.step_of(str(saved)) or 0
    assert steps[0] == resumed_from + 1, steps[:5]
    assert steps[-1] == STEPS
    assert (runs[-1] / f"checkpoint-{STEPS}" / "trainer_state.json").is_file()
