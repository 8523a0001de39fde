"""A job's needs against the nodes' setup record, on the 2-node cluster: a need that setup did not install is
refused before any node is touched; one that it did (bitsandbytes, the session's setup installs the bnb extra)
trains a 4-bit QLoRA across both nodes on CPU."""

import pytest

from swiftfleet.jobs import needs
from tests.e2e.conftest import TRAIN_ARGS, Rehearsal

pytestmark = [pytest.mark.docker, pytest.mark.swift]


def test_a_need_setup_did_not_install_is_refused_before_any_node(installed: Rehearsal) -> None:
    job = installed.job(
        name="needs-deepspeed", kind="swift sft", model=str(installed.tiny / "model"),
        datasets=[str(installed.tiny / "chat.jsonl")], args={**TRAIN_ARGS, "deepspeed": "zero2"},
    )  # fmt: skip
    run = installed.play("train.yml", job)
    assert run.rc != 0
    (spec,) = needs.specs("deepspeed")
    assert (
        f"job: args.deepspeed: deepspeed needs {spec}, which {installed.name}-node0 does not have: make setup"
        in run.output
    ), run.output[-3000:]
    assert set(run.recap()) == {"localhost"}, run.output[-3000:]  # no node was contacted
    assert "needs-deepspeed" not in installed.node(0, "ls", "/root/swiftfleet/jobs")


def test_a_tiny_qlora_trains_across_both_nodes(installed: Rehearsal) -> None:
    job = installed.job(
        name="tiny-qlora-e2e", kind="swift sft", model=str(installed.tiny / "model"),
        datasets=[str(installed.tiny / "chat.jsonl")], nproc_per_node=1, env={"CUDA_VISIBLE_DEVICES": ""},
        args={**TRAIN_ARGS, "quant_method": "bnb", "quant_bits": 4, "bnb_4bit_quant_type": "nf4",
              "max_steps": 2, "save_steps": 2},
    )  # fmt: skip
    run = installed.play("train.yml", job)
    assert run.rc == 0, run.output[-5000:]
    for rank in (0, 1):
        text = (installed.outputs / "tiny-qlora-e2e" / f"rank{rank}.log").read_text()
        assert f"rank: {rank}, local_rank: 0, world_size: 2, local_world_size: 1" in text
        assert "Linear4bit" in text  # the base weights really are bitsandbytes 4-bit on both nodes
