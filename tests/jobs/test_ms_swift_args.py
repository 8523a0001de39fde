"""The argument list in the package is what the pinned ms-swift really has (regenerated and compared), and the
checks built on it suggest the right name."""

import json
import subprocess
from pathlib import Path

import pytest

from swiftfleet.jobs import ms_swift_args
from tests.conftest import REPO

GENERATOR = REPO / "src" / "swiftfleet" / "jobs" / "gen_ms_swift_args.py"
DATA = REPO / "src" / "swiftfleet" / "jobs" / "data" / ms_swift_args.DATA_FILE


@pytest.mark.swift
def test_argument_list_matches_the_installed_ms_swift(swift_python: Path, tmp_path: Path) -> None:
    fresh = tmp_path / "args.json"
    subprocess.run(
        [str(swift_python), str(GENERATOR), str(fresh)], check=True, capture_output=True, timeout=600
    )
    assert json.loads(fresh.read_text()) == json.loads(DATA.read_text()), "run `make schema SWIFT_PY=...`"


@pytest.mark.swift
def test_source_reader_agrees_with_dataclasses(swift_python: Path) -> None:
    """Megatron's classes are read from source; the same reader must reproduce the swift classes exactly."""
    res = subprocess.run(
        [str(swift_python), str(GENERATOR), "--self-check"], capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "agrees" in res.stdout


def test_list_covers_every_command_of_the_pinned_version() -> None:
    data = json.loads(DATA.read_text())
    assert data["ms_swift"] == ms_swift_args.pinned_version() == "4.6.0"
    for command in ("sft", "pt", "rlhf", "infer", "deploy", "eval", "export"):
        assert "model" in ms_swift_args.names(f"swift {command}")
    for command in ("sft", "pt", "rlhf", "export"):
        assert "tensor_model_parallel_size" in ms_swift_args.names(f"megatron {command}")
    assert "tuner_type" in ms_swift_args.names("swift sft") and "train_type" not in ms_swift_args.names(
        "swift sft"
    )


def test_messages() -> None:
    assert ms_swift_args.unknown_arg_message("swift sft", "lora_rnak").endswith("(did you mean 'lora_rank'?)")
    assert "renamed --train_type to --tuner_type" in ms_swift_args.unknown_arg_message(
        "swift sft", "train_type"
    )
    assert ms_swift_args.unknown_arg_message("megatron sft", "deepspeed").endswith(
        "it belongs to `swift sft`"
    )
    assert ms_swift_args.check_value("swift rlhf", "rlhf_type", "grpo") is None
    assert "did you mean 'grpo'" in str(ms_swift_args.check_value("swift rlhf", "rlhf_type", "grp0"))


def test_types_and_defaults_recorded() -> None:
    assert ms_swift_args.arg_type("swift sft", "learning_rate") == "float?"
    assert ms_swift_args.arg_type("swift sft", "lora_rank") == "int"
    assert ms_swift_args.arg_type("swift sft", "target_modules") == "list[str]"
    assert ms_swift_args.arg_type("megatron sft", "tensor_model_parallel_size") == "int"
    assert ms_swift_args.default("megatron sft", "tuner_type") == "full"  # not lora, in 4.6.0
    assert ms_swift_args.default("swift sft", "tuner_type") == "lora"
    assert ms_swift_args.default("swift sft", "max_steps") == -1
    assert ms_swift_args.default("swift sft", "learning_rate") is None


@pytest.mark.parametrize(
    ("command", "arg", "value", "words"),
    [
        ("swift sft", "learning_rate", "fast", "'fast' is not a number (learning_rate is a float)"),
        ("swift sft", "learning_rate", True, "True is not a number"),
        ("swift sft", "lora_rank", 8.5, "8.5 is not a whole number (lora_rank is an int)"),
        ("swift sft", "lora_rank", "8x", "'8x' is not a whole number"),
        ("swift sft", "gradient_checkpointing", "maybe", "'maybe' is not true or false"),
        ("swift sft", "lora_rank", [8, 16], "is a list, but lora_rank takes one value"),
        ("swift sft", "target_modules", [], "[] is empty"),
        ("swift sft", "lora_rank", {"a": 1}, "a mapping is not a whole number"),
        ("swift sft", "deepspeed", "zero4", "not a DeepSpeed preset"),
        ("swift sft", "attn_impl", "flash_atn", "did you mean 'flash_attn'"),
        ("swift sft", "learning_rate", 0, "learning_rate must be > 0"),
        ("swift sft", "max_steps", 0, "max_steps must be a positive step count or -1"),
        ("swift sft", "lora_rank", 0, "lora_rank must be >= 1"),
        ("megatron sft", "micro_batch_size", 0, "micro_batch_size must be >= 1"),
        ("swift deploy", "port", 22, "port must be 1024-65535"),
        ("swift deploy", "port", 29500, "rendezvous"),
        ("swift rlhf", "vllm_server_port", [8000, 29501], "29501 is out of range"),
        ("swift sft", "torch_dtype", "bf16", "'bf16' is not one of"),
    ],
)
def test_bad_values(command: str, arg: str, value: object, words: str) -> None:
    assert words in str(ms_swift_args.check_value(command, arg, value))


@pytest.mark.parametrize(
    ("command", "arg", "value"),
    [
        ("swift sft", "learning_rate", 1.0e-4),
        ("swift sft", "learning_rate", "5e-5"),  # YAML 1.1 reads 5e-5 as a string; float() takes it
        ("swift sft", "lora_rank", "8"),
        ("swift sft", "gradient_checkpointing", "yes"),
        ("swift sft", "gradient_checkpointing", 1),
        ("swift sft", "target_modules", "all-linear"),  # one word for a list argument
        ("swift sft", "deepspeed", "zero3_offload"),
        ("swift sft", "deepspeed", "./ds.json"),
        ("swift sft", "deepspeed", {"zero_optimization": {"stage": 2}}),
        ("swift sft", "attn_impl", "flash_attention_2"),
        ("swift sft", "attn_impl", "kernels-community/flash-attn3"),
        ("swift sft", "max_steps", -1),
        ("swift sft", "num_train_epochs", -1),  # fine alone: arg_rules decides with max_steps
        ("swift deploy", "port", 8000),
        ("swift rlhf", "vllm_server_port", 8000),
        ("swift sft", "model_name", 42),  # a str argument takes any word
    ],
)
def test_good_values(command: str, arg: str, value: object) -> None:
    assert ms_swift_args.check_value(command, arg, value) is None
