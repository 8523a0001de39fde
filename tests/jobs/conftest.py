"""Fixtures for the job layer: the ms-swift Python (SWIFTFLEET_SWIFT_PYTHON, default .venv-swift) and the tiny
model made with it. Tests that need it are marked `swift` (skipped without it outside CI: tests/conftest.py)."""

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from swiftfleet.jobs import ms_swift_args, node_facts
from swiftfleet.jobs.node_facts import NodeFacts
from swiftfleet.jobs.plan_model import JobPlan
from tests.conftest import REPO, SWIFT_PYTHON, free_port

# One row of the messages format: what every kind's dataset check accepts.
CHAT_ROW = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
MAKE_TINY = REPO / "tests" / "jobs" / "make_tiny_model.py"


@pytest.fixture(scope="session")
def swift_python() -> Path:
    return SWIFT_PYTHON


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory, swift_python: Path) -> Path:
    """The tiny model and datasets, made once per session with the ms-swift Python."""
    root = tmp_path_factory.mktemp("tiny")
    subprocess.run(
        [str(swift_python), str(MAKE_TINY), str(root)], check=True, capture_output=True, timeout=300
    )
    return root


@pytest.fixture
def fake_tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory whose ./build/tiny holds stand-ins with the right shape for validation only
    (a config.json and the jsonl files), so example jobs validate without an ms-swift Python; and outputs/ with a
    fetched LoRA checkpoint of jobs/lora-sft.yml's job, which jobs/merge-lora.yml merges."""
    tiny_dir = tmp_path / "build" / "tiny"
    (tiny_dir / "model").mkdir(parents=True)
    (tiny_dir / "model" / "config.json").write_text("{}")
    for name in ("chat.jsonl", "eval.jsonl"):
        (tiny_dir / name).write_text(CHAT_ROW * 4)  # rows enough for jobs/infer.yml to share over 2 nodes
    checkpoint = tmp_path / "outputs" / "qwen7b-lora" / "output" / "v0-1" / "checkpoint-10"
    checkpoint.mkdir(parents=True)
    (checkpoint / "adapter_config.json").write_text("{}")
    monkeypatch.setenv("SWIFTFLEET_OUTPUTS_DIR", str(tmp_path / "outputs"))
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def recorded(
    home: Path | str, venv: Path | str, user: str = "root", env_files: tuple[str, ...] = ()
) -> NodeFacts:
    """A node's setup record as stack_check writes it, for a node whose stack is at venv."""
    return NodeFacts(
        job_user=user,
        home=str(home),
        venv=str(venv),
        env_files=list(env_files),
        ms_swift=ms_swift_args.pinned_version(),
        torch="2.13.0+cpu",
        gpu_count=0,
    )


def write_record(cluster: str, nodes: dict[str, NodeFacts]) -> Path:
    """What setup.yml saves on the controller for a cluster (SWIFTFLEET_STATE_DIR decides where)."""
    path = node_facts.facts_file(cluster)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({host: f.model_dump() for host, f in nodes.items()}))
    return path


def run_ranks_here(job_plan: JobPlan, root: Path, home: Path) -> list[Path]:
    """Every rank of a rendered plan as a process on this machine, the playbook's part done by hand: the uploads
    copied into each rank's job directory under root (render_all's layout), MASTER_ADDR turned to 127.0.0.1 and a
    free port, then run.sh started per rank. Waits for all; fails with both logs' ends unless all exit 0.
    Returns each rank's log."""
    port = free_port()
    procs, logs = [], []
    for node in job_plan.nodes:
        job_dir = root / f"rank{node.rank}-{node.host}" / node.job_dir.lstrip("/")
        for upload in job_plan.uploads:
            dest = job_dir / upload.dest
            dest.parent.mkdir(parents=True, exist_ok=True)
            copy = shutil.copytree if Path(upload.src).is_dir() else shutil.copy
            copy(upload.src, dest)
        env_file = job_dir / "job.env"
        text = env_file.read_text()
        assert f'MASTER_ADDR="{job_plan.master_addr}"' in text  # else rank 1 would wait for a rank 0 nowhere
        env_file.write_text(
            text.replace(f'MASTER_ADDR="{job_plan.master_addr}"', 'MASTER_ADDR="127.0.0.1"').replace(
                f"MASTER_PORT={job_plan.master_port}", f"MASTER_PORT={port}"
            )
        )
        logs.append(job_dir / f"rank{node.rank}.log")
        with logs[-1].open("w") as out:
            procs.append(
                subprocess.Popen(
                    ["bash", str(job_dir / "run.sh")],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env={"PATH": os.environ["PATH"], "HOME": str(home)},
                )
            )
    try:
        codes = [p.wait(timeout=600) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert codes == [0] * len(procs), "".join(log.read_text()[-3000:] for log in logs)
    return logs
