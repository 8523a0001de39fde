"""Real ms-swift, two nodes' worth of processes on this machine: each rank runs the run.sh that `swiftfleet render`
wrote for it, from its own job directory, with its own job.env. Only MASTER_ADDR is changed, to 127.0.0.1 (both
"nodes" are this machine; on a cluster it is rank 0's private IP), and the port is taken free."""

from pathlib import Path

import pytest

from swiftfleet.jobs import plan, render, spec
from tests.conftest import REPO
from tests.jobs.conftest import recorded, run_ranks_here


@pytest.mark.swift
def test_tiny_lora_trains_on_two_ranks(tiny: Path, swift_python: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "tiny").symlink_to(tiny)
    monkeypatch.chdir(tmp_path)  # the example's ./build/tiny paths resolve here
    nodes = plan.hypothetical_nodes(2)
    # Both "nodes" are this machine: their stack is the controller's ms-swift environment, no env files.
    facts = {n.name: recorded(tmp_path, swift_python.parent.parent) for n in nodes}
    job_plan = plan.build(spec.load_job(REPO / "jobs" / "tiny-lora.yml"), nodes, "tiny", facts)
    render.render_all(job_plan, tmp_path / "nodes")
    logs = run_ranks_here(job_plan, tmp_path / "nodes", tmp_path)
    texts = [log.read_text() for log in logs]
    for rank, text in enumerate(texts):
        assert f"rank: {rank}, local_rank: 0, world_size: 2, local_world_size: 1" in text
        assert "torch.distributed.run --nproc_per_node 1" in text  # ms-swift re-exec'd under torchrun
    rank0 = logs[0].parent
    ckpts = list((rank0 / "output").glob("v*/checkpoint-20"))
    assert ckpts and (ckpts[0] / "adapter_model.safetensors").is_file(), list(rank0.rglob("*"))
    assert plan.latest_checkpoint(rank0 / "output") == ckpts[0]
