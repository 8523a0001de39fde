"""Rules between arguments and the world a job runs in (arg_rules.check_steps, check_layout), as pure unit tests."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from swiftfleet.jobs.arg_rules import check_layout, check_rollout, check_steps
from tests.conftest import REPO


def _check(command: str, args: dict[str, Any], nnodes: int = 2, nproc: int = 4, gpus: int = 4) -> Any:
    return (
        check_steps(command, args)
        or check_rollout(command, args)
        or check_layout(command, args, nnodes=nnodes, nproc_per_node=nproc, gpus_per_node=gpus)
    )


@pytest.mark.parametrize("path", sorted((REPO / "jobs").glob("**/*.yml")), ids=lambda p: p.stem)
def test_examples_pass(path: Path) -> None:
    job = yaml.safe_load(path.read_text())["job"]
    assert _check(job["kind"], job.get("args", {}), nproc=8, gpus=8) is None


def test_tensor_parallel_must_divide_the_world() -> None:
    assert _check("megatron sft", {"tensor_model_parallel_size": 3}) == (
        "args.tensor_model_parallel_size",
        "TP 3 x PP 1 x CP 1 = 3 does not divide the world size 8 (2 nodes x 4 processes)",
    )
    where, message = _check("megatron sft", {"pipeline_model_parallel_size": 2, "context_parallel_size": 3})
    assert where == "args.pipeline_model_parallel_size" and "= 6 does not divide" in message


def test_expert_parallel_must_divide_the_world() -> None:
    where, message = _check("megatron sft", {"expert_model_parallel_size": 16})
    assert where == "args.expert_model_parallel_size" and "ETP 1 x EP 16 x PP 1 = 16" in message
    assert _check("megatron sft", {"expert_model_parallel_size": 8, "global_batch_size": 16}) is None


def test_global_batch_is_whole_micro_batches_per_data_parallel_rank() -> None:
    where, message = _check("megatron sft", {"global_batch_size": 12, "micro_batch_size": 1})
    assert where == "args.global_batch_size" and "data-parallel size 8" in message
    assert _check("megatron sft", {"global_batch_size": 12, "tensor_model_parallel_size": 2}) is None  # DP 4


def test_cpu_nodes_keep_world_arithmetic_but_skip_gpu_checks() -> None:
    assert _check("megatron sft", {"tensor_model_parallel_size": 3}, nnodes=1, nproc=2, gpus=0) is not None
    assert _check("swift deploy", {"vllm_tensor_parallel_size": 8}, nnodes=1, nproc=1, gpus=0) is None


def test_vllm_gpus_come_from_one_node() -> None:
    where, message = _check("swift deploy", {"vllm_tensor_parallel_size": 8}, nnodes=1, nproc=1)
    assert (
        where == "args.vllm_tensor_parallel_size" and "needs 8 GPUs on one node, the nodes have 4" in message
    )
    where, _ = _check("swift rollout", {"vllm_data_parallel_size": 2, "vllm_tensor_parallel_size": 4})
    assert where == "args.vllm_tensor_parallel_size"
    assert _check("swift rlhf", {"vllm_tensor_parallel_size": 4}) is None


def test_at_least_one_training_step() -> None:
    where, message = _check("swift sft", {"num_train_epochs": 0})
    assert where == "args.num_train_epochs" and "set max_steps" in message
    assert _check("swift sft", {"num_train_epochs": -1})[0] == "args.num_train_epochs"
    assert _check("swift sft", {"num_train_epochs": -1, "max_steps": 100}) is None
    assert _check("megatron sft", {"num_train_epochs": 0})[1].endswith(
        "set train_iters to train by steps instead"
    )
    assert _check("megatron sft", {"num_train_epochs": 0, "train_iters": 10}) is None


def test_streaming_needs_a_step_count() -> None:
    assert _check("swift sft", {"streaming": True}) == (
        "args.streaming",
        "a streaming dataset has no length: set max_steps (ms-swift's rule)",
    )
    assert _check("swift sft", {"streaming": "true", "max_steps": 50}) is None
    assert _check("swift sft", {"streaming": False}) is None
    assert "train_iters" in _check("megatron sft", {"streaming": True})[1]
    assert (
        "save_strategy epoch"
        in _check("megatron sft", {"streaming": True, "train_iters": 10, "save_strategy": "epoch"})[1]
    )
    assert _check("swift deploy", {"streaming": True}, nnodes=1, nproc=1) is None  # serving, no steps


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({"vllm_mode": "colocate"}, ("args.vllm_mode", "vLLM rollouts need use_vllm: true")),
        ({"use_vllm": True}, ("args.use_vllm", "say where vLLM runs: vllm_mode: colocate")),
        (
            {"use_vllm": "true", "vllm_mode": "server"},
            ("args.vllm_mode", "server mode needs a running `swift rollout`"),
        ),
        (
            {"use_vllm": True, "vllm_mode": "colocate", "async_generate": True},
            ("args.async_generate", "async_generate needs vllm_mode: server"),
        ),
    ],
)
def test_grpo_rollouts_say_where_vllm_runs(args: dict[str, Any], problem: tuple[str, str]) -> None:
    """What ms-swift 4.6.0 refuses or asserts at its start (rlhf_args.py:444-458), refused before any spend."""
    found = check_rollout("swift rlhf", {"rlhf_type": "grpo", **args})
    assert found is not None and found[0] == problem[0] and found[1].startswith(problem[1]), found


def test_a_named_rollout_server_or_colocate_passes() -> None:
    for args in (
        {
            "use_vllm": True,
            "vllm_mode": "server",
            "vllm_server_host": ["10.0.1.20"],
            "vllm_server_port": [8000],
        },
        {"use_vllm": True, "vllm_mode": "server", "vllm_server_base_url": ["http://10.0.1.20:8000"]},
        {"use_vllm": True, "vllm_mode": "colocate"},
        {},
    ):
        assert check_rollout("swift rlhf", args) is None, args
    assert check_rollout("swift sft", {"vllm_mode": "server"}) is None  # not rlhf: its own argument check
