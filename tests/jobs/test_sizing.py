"""The memory rule of thumb against ms-swift's published figures, and the parameter counts read from names."""

import pytest

from swiftfleet.jobs import sizing

GB = 1e9 / 2**30  # the published figures are in GB, the estimate in GiB


@pytest.mark.parametrize(
    ("name", "total", "active"),
    [
        ("Qwen/Qwen2.5-7B-Instruct", 7, 7),
        ("Qwen2.5-0.5B", 0.5, 0.5),
        ("Qwen/Qwen2.5-72B", 72, 72),
        ("Qwen/Qwen3-30B-A3B-Instruct-2507", 30, 3),
        ("Qwen/Qwen3-235B-A22B", 235, 22),
        ("mistralai/Mixtral-8x7B-v0.1", 56, 14),
        ("meta-llama/Llama-3.1-8B", 8, 8),
    ],
)
def test_parameter_count_from_name(name: str, total: float, active: float) -> None:
    assert sizing.parse_params(name) == (total, active)


@pytest.mark.parametrize("name", ["./build/tiny/model", "Qwen/Qwen-VL-Chat", "org/bert-base"])
def test_names_without_a_count_are_unknown(name: str) -> None:
    assert sizing.parse_params(name) is None


@pytest.mark.parametrize(
    ("model", "tuner", "quant", "deepspeed", "split", "world", "published_gb"),
    [
        ("Qwen2.5-7B", "lora", None, None, None, 1, 18),
        ("Qwen2.5-7B", "lora", 4, None, None, 1, 9),
        ("Qwen2.5-14B", "lora", None, None, None, 1, 32),
        ("Qwen3-30B-A3B", "full", None, None, 8, 8, 60),
    ],
)
def test_estimate_within_a_quarter_of_published_figures(  # type: ignore[no-untyped-def]
    model, tuner, quant, deepspeed, split, world, published_gb
) -> None:
    params = sizing.parse_params(model)
    assert params is not None
    need = sizing.training_gib(
        params, tuner=tuner, quant_bits=quant, deepspeed=deepspeed, megatron_split=split, world=world, refs=0
    )
    assert 0.75 * published_gb * GB <= need <= 1.25 * published_gb * GB, need


def test_zero_stages_shrink_full_training_and_references_grow_it() -> None:
    p = sizing.Params(7, 7)
    by_stage = [
        sizing.training_gib(
            p, tuner="full", quant_bits=None, deepspeed=s, megatron_split=None, world=8, refs=0
        )
        for s in (None, "zero1", "zero2", "zero3")
    ]
    assert by_stage == sorted(by_stage, reverse=True) and len(set(by_stage)) == 4
    dpo = sizing.training_gib(
        p, tuner="full", quant_bits=None, deepspeed=None, megatron_split=None, world=8, refs=1
    )
    assert dpo > by_stage[0]
    assert sizing.reference_models("dpo") == 1 and sizing.reference_models("simpo") == 0


def test_verdict_levels() -> None:
    assert sizing.verdict(30, 24, "x").level == "refuse"
    assert sizing.verdict(22, 24, "x").level == "warn"
    assert sizing.verdict(10, 24, "x").level == "ok"
