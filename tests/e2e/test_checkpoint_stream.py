"""Checkpoints leave the nodes while the job trains (playbooks/tasks/stream.yml), and a lost rank 0 costs only the
steps since the last one: a LoRA trains across both nodes of the session's cluster (conftest.py), a checkpoint
lands complete on the controller while both units still run, rank 0's container is killed and removed mid-run
(its disk is gone, as a lost instance's), `swiftfleet cluster up` and setup.yml bring it back, and `resume:
latest` goes on from the newest streamed checkpoint to the end. The node is set up again as the session set it
up, so the modules after this one find the cluster as they expect it.

Prints the checkpoint lag (written on the node -> marked on the controller; median over the run's checkpoints)
and the time from the node's loss to training again."""

import json
import os
import signal
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from swiftfleet import local_cluster
from swiftfleet.jobs.checkpoints import MARKER, latest_complete, step_of
from tests.conftest import run_cli
from tests.e2e.conftest import TRAIN_ARGS, Rehearsal
from tests.e2e.test_s3 import BUCKET, Store, s3  # noqa: F401  (the module's own S3 stand-in)

pytestmark = [pytest.mark.docker, pytest.mark.swift]

NAME = "ck-stream"
MAX_STEPS = 30
ARGS = {**TRAIN_ARGS, "max_steps": MAX_STEPS, "save_steps": 3}


def _job(r: Rehearsal, **extra: Any) -> Path:
    return r.job(
        name=NAME, kind="swift sft", model=str(r.tiny / "model"), datasets=[str(r.tiny / "chat.jsonl")],
        nproc_per_node=1, args=ARGS, env={"CUDA_VISIBLE_DEVICES": ""}, **extra,
    )  # fmt: skip


def _markers(r: Rehearsal) -> dict[int, dict[str, Any]]:
    """step -> marker of every checkpoint copied complete to the controller."""
    found = (r.outputs / NAME / "output").glob(f"*/checkpoint-*/{MARKER}")
    return {step_of(str(m.parent)) or 0: json.loads(m.read_text()) for m in found}


def _wait(what: str, seconds: float, check: Any) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(1)
    pytest.fail(f"no {what} after {seconds:.0f} s")


def test_an_s3_output_gets_the_checkpoints_and_their_markers_under_its_prefix(
    installed: Rehearsal,
    s3: Store,  # noqa: F811
) -> None:
    name = "ck-s3"
    prefix = f"runs/{name}"
    job = installed.job(
        name=name, kind="swift sft", model=str(installed.tiny / "model"), datasets=[str(installed.tiny / "chat.jsonl")],
        nproc_per_node=1, output=f"s3://{BUCKET}/{prefix}", args={**TRAIN_ARGS, "max_steps": 4, "save_steps": 2},
        env=s3.job_env(),
    )  # fmt: skip
    run = installed.play("train.yml", job)
    print(f"train.yml (s3:// output, 2 nodes, 4 steps, checkpoints streamed): {run.seconds:.0f} s")
    assert run.rc == 0, run.output[-5000:]
    objects = s3.keys(f"{prefix}/")
    for step in (2, 4):
        (marker,) = [k for k in objects if k.endswith(f"/checkpoint-{step}/{MARKER}")]
        body = json.loads(s3.client.get_object(Bucket=BUCKET, Key=marker)["Body"].read())
        assert body["step"] == step and body["files"] > 0, body
        assert marker.removesuffix(MARKER) + "adapter_model.safetensors" in objects
        assert f"checkpoint-{step} safe at s3://{BUCKET}/{prefix}/" in run.output
    assert not (installed.outputs / name / "output").exists()


def test_checkpoints_stream_off_the_nodes_and_a_lost_rank0_resumes_from_them(installed: Rehearsal) -> None:
    try:
        _stream_lose_and_resume(installed)
    except BaseException:
        # The session's cluster whole and set up again, so that one failure here does not fail the tests after it.
        run_cli("cluster", "up", "--config", str(installed.root / "cluster.yml"), env=installed.env)
        installed.setup()
        raise


def _stream_lose_and_resume(r: Rehearsal) -> None:
    first_log = r.root / f"{NAME}-first.log"
    play = r.start("train.yml", _job(r), first_log)
    try:
        # A complete checkpoint is on the controller while both ranks still train: copied during the run.
        _wait("streamed checkpoint", 900, lambda: len(_markers(r)) >= 1)
        assert r.unit_states(NAME) == ["active", "active"], first_log.read_text()[-3000:]
        assert min(_markers(r)) < MAX_STEPS
        # Lost at once: on an idle machine the 30 steps take about 30 s, only a few watch rounds.
        # Rank 0's node is lost mid-run: killed, then removed with its disk (a lost instance).
        rank0 = local_cluster.container_name(r.name, 0)
        lost = time.monotonic()
        subprocess.run(["docker", "kill", rank0], check=True, capture_output=True)
    finally:
        # The watch waits on a connection to a node that is gone; the user stops it as they would (Ctrl-C).
        try:
            play.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(play.pid, signal.SIGINT)
            play.wait(timeout=60)
    subprocess.run(["docker", "rm", rank0], check=True, capture_output=True)
    first = _markers(r)
    lags = [m["lag_seconds"] for m in first.values()]
    text = first_log.read_text()
    for step in first:  # one line per checkpoint in the watch's output, with its lag
        assert f"checkpoint-{step} safe at " in text and "s (written on the node -> safe)" in text
    resumed_from = latest_complete(r.outputs / NAME)
    assert resumed_from is not None and step_of(str(resumed_from)) == max(first), first

    # Back: a new rank 0 (host key pinned again), its stack set up, the hung rank 1 stopped, the job resumed.
    config = r.root / "cluster.yml"
    up = run_cli("cluster", "up", "--config", str(config), env=r.env)
    assert up.returncode == 0, up.stdout + up.stderr
    back = time.monotonic()
    setup = r.setup()
    assert setup.rc == 0, setup.output[-3000:]
    set_up = time.monotonic()
    job = _job(r, resume="latest")
    stop = r.play("stop.yml", job)
    assert stop.rc == 0, stop.output[-3000:]
    second_log = r.root / f"{NAME}-resumed.log"
    play = r.start("train.yml", job, second_log)
    log = f"/root/swiftfleet/jobs/{NAME}/rank0.log"
    _wait("training step after the resume", 900, lambda: "global_step/max_steps" in r.node(0, "cat", log))
    training = time.monotonic()
    assert play.wait(timeout=1800) == 0, second_log.read_text()[-5000:]
    text = second_log.read_text()

    k = max(first)
    assert f"resume/checkpoint-{k}" in text  # the streamed checkpoint went up with the job, to every node
    for rank in (0, 1):
        assert r.node(rank, "ls", f"/root/swiftfleet/jobs/{NAME}/resume").split() == [f"checkpoint-{k}"]
    # The step count goes on from k: no step up to k is run again, and the run ends at MAX_STEPS.
    assert f"step {MAX_STEPS}/{MAX_STEPS}  loss" in text
    assert not any(f"step {s}/{MAX_STEPS} " in text for s in range(1, k + 1))
    final = latest_complete(r.outputs / NAME)
    assert final is not None and step_of(str(final)) == MAX_STEPS
    state = json.loads((final / "trainer_state.json").read_text())
    assert state["global_step"] == MAX_STEPS
    steps = [
        int(json.loads(line)["global_step/max_steps"].split("/")[0])
        for line in (final.parent / "logging.jsonl").read_text().splitlines()
        if "global_step/max_steps" in line
    ]
    assert steps and steps[0] > k and steps[-1] == MAX_STEPS, steps
    second = _markers(r)
    assert set(range(k + 3, MAX_STEPS + 1, 3)) <= set(second), sorted(second)

    lags += [m["lag_seconds"] for s, m in second.items() if s > k]
    print(
        f"checkpoint lag (written on the node -> safe on the controller): median {statistics.median(lags):.1f} s "
        f"over {len(lags)} checkpoints (min {min(lags):.1f}, max {max(lags):.1f}); node loss -> training again: "
        f"{training - lost:.0f} s (cluster up {back - lost:.0f} s, setup.yml {set_up - back:.0f} s, "
        f"stop + train.yml to the first step {training - set_up:.0f} s); resumed from checkpoint-{k}"
    )
