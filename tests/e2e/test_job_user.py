"""A job user and an ms-swift environment of the user's choosing (roles/README.md: swiftfleet_job_user,
swiftfleet_venv): setup installs the stack there and records it, and a job runs there as that user, because the
node side reads the plan made from that record and guesses neither ~/swift-env nor /home/<user>.

The same run carries a token in its env: it must end up in the node's mode-0600 job.env and nowhere else, not in
any other file on either node, not under outputs/, not in `swiftfleet render`'s output."""

import json
import subprocess
from collections.abc import Iterator

import pytest

from swiftfleet.jobs import node_facts
from tests.conftest import run_cli
from tests.e2e.conftest import SETUP_VARS, TRAIN_ARGS, Rehearsal

pytestmark = [pytest.mark.docker, pytest.mark.swift]

HOME, VENV = "/srv/trainer", "/srv/trainer/envs/swift"
TOKEN = "hf_e2eTokenThatMustNotLeak0123456789abcd"


@pytest.fixture
def trainer(installed: Rehearsal) -> Iterator[Rehearsal]:
    """Both nodes set up for the user `trainer` (home /srv/trainer) with the environment at envs/swift; afterwards
    the session's setup again, so that later tests find the record they expect (root, ~/swift-env)."""
    for rank in (0, 1):
        installed.node(rank, "useradd", "--create-home", "--home-dir", HOME, "trainer")
    extra = json.dumps(
        {"ms_swift_extras": [], "swiftfleet_job_user": "trainer", "swiftfleet_venv": "envs/swift"}
    )
    run = installed.setup(extra)
    try:
        assert run.rc == 0, run.output[-5000:]
        yield installed
    finally:
        back = installed.setup(SETUP_VARS)
        assert back.rc == 0, back.output[-3000:]


def test_a_job_runs_as_the_recorded_user_from_the_recorded_environment(trainer: Rehearsal) -> None:
    record = node_facts.load(trainer.name)
    assert record is not None and len(record) == 2
    for facts in record.values():
        assert (facts.job_user, facts.home, facts.venv) == ("trainer", HOME, VENV), facts
    job = trainer.job(
        name="as-trainer", kind="swift sft", model=str(trainer.tiny / "model"),
        datasets=[str(trainer.tiny / "chat.jsonl")], nproc_per_node=1,
        args={**TRAIN_ARGS, "max_steps": 2, "save_steps": 2}, env={"CUDA_VISIBLE_DEVICES": "", "HF_TOKEN": TOKEN},
    )  # fmt: skip
    run = trainer.play("train.yml", job)
    assert run.rc == 0, run.output[-5000:]
    job_dir = f"{HOME}/swiftfleet/jobs/as-trainer"
    for rank in (0, 1):
        unit = f"swiftfleet-as-trainer-rank{rank}.service"
        assert trainer.node(rank, "systemctl", "show", "-p", "User", "--value", unit).strip() == "trainer"
        assert trainer.node(rank, "stat", "-c", "%U %a", f"{job_dir}/job.env").split() == ["trainer", "600"]
        assert f"{VENV}/bin/python" in (trainer.outputs / "as-trainer" / f"rank{rank}.log").read_text()
        assert trainer.node(rank, "ls", "/root/swiftfleet/jobs").split().count("as-trainer") == 0
    assert trainer.node(0, "stat", "-c", "%U", f"{job_dir}/output").strip() == "trainer"

    # The token: in job.env on each node and nowhere else on it, nor in what came back or what render writes.
    for rank in (0, 1):
        # Every file but the kernel's and the package trees written before the job (wheels, uv's cache, the
        # environments' site-packages: gigabytes that no job writes to).
        skip = [f"--exclude-dir={d}" for d in ("proc", "sys", "dev", "wheels", "uv", "site-packages")]
        found = trainer.node(rank, "grep", "-rlF", TOKEN, "/", *skip).split()
        assert found == [f"{job_dir}/job.env"], (rank, found)
    fetched = subprocess.run(["grep", "-rlF", TOKEN, str(trainer.outputs)], capture_output=True, text=True)
    assert fetched.stdout == "" and fetched.returncode == 1, fetched.stdout
    out = trainer.root / "render"
    render = run_cli(
        "render", str(job), "--inventory-cluster", trainer.name, "--out", str(out), env=trainer.env
    )
    assert render.returncode == 0, render.stdout + render.stderr
    rendered = subprocess.run(["grep", "-rlF", TOKEN, str(out)], capture_output=True, text=True)
    assert rendered.stdout == "" and rendered.returncode == 1, rendered.stdout
    assert TOKEN not in render.stdout + render.stderr and TOKEN not in run.output
