"""Bad ms-swift argument values get one clear line from `swiftfleet render`, and no host is touched: the values
that ms-swift's parser, its run-time checks or megatron-core would refuse only on the (paid) nodes."""

from pathlib import Path
from typing import Any

import pytest

from tests.jobs.test_bad_jobs import assert_refused_in_one_line, gpu_cluster, sft, with_args  # noqa: F401 (the fixture)
from tests.jobs.test_bad_plans import PLAN_CASES
from tests.test_cluster_file_errors import Tripwire, tripwire  # noqa: F401 (the fixture)


def deploy(**args: Any) -> dict[str, Any]:
    return {"job": {"name": "srv", "kind": "swift deploy", "model": "Qwen/Qwen2.5-7B-Instruct", "args": args}}


def megatron(data: Path, **args: Any) -> dict[str, Any]:
    return sft(data, kind="megatron sft", args={"tuner_type": "lora", **args})


# (case id, job file content from the dataset path, words the one line must contain)
CASES = [
    (
        "lr-not-a-number",
        lambda d: with_args(d, learning_rate="fast"),
        ["args.learning_rate", "'fast' is not a number (learning_rate is a float)"],
    ),
    ("rank-float", lambda d: with_args(d, lora_rank=8.5), ["args.lora_rank", "8.5 is not a whole number"]),
    ("rank-text", lambda d: with_args(d, lora_rank="8x"), ["args.lora_rank", "'8x' is not a whole number"]),
    (
        "bool-word",
        lambda d: with_args(d, gradient_checkpointing="maybe"),
        ["args.gradient_checkpointing", "true or false"],
    ),
    ("list-for-one", lambda d: with_args(d, lora_rank=[8, 16]), ["args.lora_rank", "takes one value"]),
    ("empty-list", lambda d: with_args(d, target_modules=[]), ["args.target_modules", "[] is empty"]),
    (
        "deepspeed-zero4",
        lambda d: with_args(d, deepspeed="zero4"),
        ["args.deepspeed", "not a DeepSpeed preset", "did you mean 'zero"],
    ),
    (
        "attn-impl-typo",
        lambda d: with_args(d, attn_impl="flash_atn"),
        ["args.attn_impl", "did you mean 'flash_attn'"],
    ),
    ("lr-zero", lambda d: with_args(d, learning_rate=0), ["args.learning_rate", "must be > 0"]),
    ("max-steps-zero", lambda d: with_args(d, max_steps=0), ["args.max_steps", "-1"]),
    ("rank-zero", lambda d: with_args(d, lora_rank=0), ["args.lora_rank", ">= 1"]),
    (
        "batch-zero",
        lambda d: with_args(d, per_device_train_batch_size=0),
        ["args.per_device_train_batch_size", ">= 1"],
    ),
    (
        "accumulation-zero",
        lambda d: with_args(d, gradient_accumulation_steps=0),
        ["args.gradient_accumulation_steps", ">= 1"],
    ),
    ("megatron-micro-zero", lambda d: megatron(d, micro_batch_size=0), ["args.micro_batch_size", ">= 1"]),
    ("deploy-port-ssh", lambda d: deploy(port=22), ["args.port", "1024-65535"]),
    ("deploy-port-rendezvous", lambda d: deploy(port=29550), ["args.port", "rendezvous"]),
    (
        "grpo-server-port-rendezvous",
        lambda d: sft(d, kind="swift rlhf", rlhf_type="grpo", args={"vllm_server_port": [29501]}),
        ["args.vllm_server_port", "29501 is out of range"],
    ),
    # Cross-argument rules: arg_rules.check_steps and check_layout, which plan.py calls.
    pytest.param(
        "epochs-without-steps",
        lambda d: with_args(d, num_train_epochs=-1),
        ["args.num_train_epochs", "set max_steps"],
    ),
    pytest.param(
        "streaming-without-steps",
        lambda d: with_args(d, streaming=True),
        ["args.streaming", "set max_steps"],
    ),
    pytest.param(
        "megatron-tp-3",
        lambda d: megatron(d, tensor_model_parallel_size=3),
        ["args.tensor_model_parallel_size", "does not divide the world size 8 (2 nodes x 4 processes)"],
    ),
    pytest.param(
        "megatron-ep-16",
        lambda d: megatron(d, expert_model_parallel_size=16),
        ["args.expert_model_parallel_size", "EP 16"],
    ),
    pytest.param(
        "megatron-global-batch",
        lambda d: megatron(d, global_batch_size=12),
        ["args.global_batch_size", "data-parallel size 8"],
    ),
    pytest.param(
        "deploy-vllm-tp-over-gpus",
        lambda d: deploy(infer_backend="vllm", vllm_tensor_parallel_size=8),
        ["args.vllm_tensor_parallel_size", "the nodes have 4"],
    ),
]


def _id(case: Any) -> str:
    return str(case.values[0] if hasattr(case, "values") else case[0])


@pytest.mark.parametrize(
    ("case", "content", "words"), CASES + PLAN_CASES, ids=[_id(c) for c in CASES + PLAN_CASES]
)
def test_bad_arg_is_one_clear_line(  # type: ignore[no-untyped-def]
    case,
    content,
    words,
    tmp_path: Path,
    gpu_cluster: str,  # noqa: F811
    tripwire: Tripwire,  # noqa: F811
) -> None:
    assert_refused_in_one_line(case, content, words, tmp_path, gpu_cluster, tripwire)
