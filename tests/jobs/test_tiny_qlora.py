"""QLoRA (bitsandbytes 4-bit base weights) on CPU, for real, two ranks: jobs/qlora.yml's arguments on the tiny model.

This is the evidence that the ms_swift role's `bnb` need is not GPU-only: ms-swift 4.6.0, torch 2.13.0+cpu and the
pinned bitsandbytes (its CPU backend) train a 4-bit LoRA together over gloo. The nodes' setup record is what
stack_report.py says of the ms-swift Python, so the job's needs are checked against that environment as a
cluster's nodes are.
"""

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from swiftfleet.jobs import needs, plan, render, spec
from tests.conftest import REPO
from tests.jobs.conftest import recorded, run_ranks_here

STACK_REPORT = REPO / "roles" / "stack_check" / "files" / "stack_report.py"


def _qlora_job() -> dict:  # type: ignore[type-arg]
    """jobs/tiny-lora.yml with jobs/qlora.yml's quantization arguments (compute in float32: CPU), two steps."""
    job = yaml.safe_load((REPO / "jobs" / "tiny-lora.yml").read_text())["job"]
    qlora = yaml.safe_load((REPO / "jobs" / "qlora.yml").read_text())["job"]["args"]
    quant = {k: qlora[k] for k in ("quant_method", "quant_bits", "bnb_4bit_quant_type")}
    steps = {"max_steps": 2, "save_steps": 2, "eval_steps": 2, "logging_steps": 1}
    return {**job, "name": "tiny-qlora", "args": {**job["args"], **quant, **steps}}


@pytest.mark.swift
def test_tiny_qlora_trains_on_two_cpu_ranks(
    tiny: Path, swift_python: Path, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "tiny").symlink_to(tiny)
    monkeypatch.chdir(tmp_path)  # the job's ./build/tiny paths resolve here
    job = spec.parse_job({"job": _qlora_job()}, "tiny-qlora")
    assert job.args["quant_method"] == "bnb" and job.args["quant_bits"] == 4
    report = subprocess.run(
        [str(swift_python), str(STACK_REPORT)], capture_output=True, text=True, check=True, timeout=120
    )
    dists = json.loads(report.stdout)["distributions"]
    job_needs = needs.job_needs(job.command, job.args, job.model)
    assert job_needs == ["bnb"]
    assert needs.missing(job_needs, dists) == [], "the ms-swift Python lacks the table's bitsandbytes pin"
    nodes = plan.hypothetical_nodes(2)
    # Both "nodes" are this machine: their stack is the controller's ms-swift environment, no env files.
    facts = {
        n.name: recorded(tmp_path, swift_python.parent.parent).model_copy(update={"distributions": dists})
        for n in nodes
    }
    job_plan = plan.build(job, nodes, "tiny-qlora", facts)
    render.render_all(job_plan, tmp_path / "nodes")
    logs = run_ranks_here(job_plan, tmp_path / "nodes", tmp_path)
    texts = [log.read_text() for log in logs]
    for rank, text in enumerate(texts):
        assert f"rank: {rank}, local_rank: 0, world_size: 2, local_world_size: 1" in text
        assert "Linear4bit" in text  # the base model's linear layers really are bitsandbytes 4-bit
        assert "'global_step/max_steps': '2/2'" in text
    ckpts = list((logs[0].parent / "output").glob("v*/checkpoint-2"))
    assert ckpts and (ckpts[0] / "adapter_model.safetensors").is_file()
