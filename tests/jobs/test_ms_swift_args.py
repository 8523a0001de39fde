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
