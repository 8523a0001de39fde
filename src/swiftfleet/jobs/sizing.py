"""Will the model fit? A rule-of-thumb GPU memory estimate per GPU, from the parameter count in the model's name.

Bytes per parameter: bf16 weights 2 (QLoRA 4-bit about 0.55); full training adds gradients 2 and Adam states 12.
DeepSpeed ZeRO 1/2/3 shard optimizer / +gradients / +weights over all GPUs; Megatron shards weights and gradients
over TP x PP x EP and (distributed optimizer) the Adam states over every GPU. Activations with gradient
checkpointing: about 1.5 GiB + 0.25 GiB per billion active parameters. This reproduces ms-swift's published figures
(7B LoRA ~18 GB, QLoRA ~9 GB; 14B LoRA ~32 GB; 30B-A3B full with Megatron on 8 GPUs ~60 GB) closely enough to
catch jobs that cannot fit; it is not a promise that one that passes will.
"""

import re
from typing import Any, Literal, NamedTuple

GIB = 2**30
WARN_FRACTION = 0.85
_MOE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[Bb]-A(\d+(?:\.\d+)?)[Bb](?![A-Za-z0-9])")
_EXPERTS = re.compile(r"(?<![\w.])(\d+)x(\d+(?:\.\d+)?)[Bb](?![A-Za-z0-9])")
_DENSE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[Bb](?![A-Za-z0-9])")
# Reference models an RLHF method keeps beside the policy in full training (LoRA reuses the frozen base).
_REFERENCE_MODELS = {"dpo": 1, "kto": 1, "grpo": 1, "gkd": 1, "ppo": 3}


class Params(NamedTuple):
    total_b: float
    active_b: float


class Verdict(NamedTuple):
    level: Literal["ok", "warn", "refuse", "skip"]
    message: str


def parse_params(model: str) -> Params | None:
    """'Qwen2.5-7B-Instruct' -> 7B; 'Qwen3-30B-A3B' -> 30B total, 3B active; 'Mixtral-8x7B' -> 56B; else None."""
    name = model.rstrip("/").rsplit("/", 1)[-1]
    if m := _MOE.search(name):
        return Params(float(m[1]), float(m[2]))
    if m := _EXPERTS.search(name):
        return Params(int(m[1]) * float(m[2]), 2 * float(m[2]))  # top-2 routing, as Mixtral
    if m := _DENSE.search(name):
        return Params(float(m[1]), float(m[1]))
    return None


def _deepspeed_shards(stage: str, world: int) -> tuple[int, int, int]:
    """Divisors for (weights, gradients, optimizer) under a ZeRO config name; offloaded parts count as gone."""
    huge = 10**9
    return {
        "zero1": (1, 1, world),
        "zero2": (1, world, world),
        "zero2_offload": (1, world, huge),
        "zero3": (world, world, world),
        "zero3_offload": (huge, world, huge),
    }.get(stage, (1, 1, 1))


def training_gib(
    params: Params,
    *,
    tuner: str,
    quant_bits: Any,
    deepspeed: Any,
    megatron_split: int | None,
    world: int,
    refs: int,
) -> float:
    weight_bytes = {4: 0.55, 8: 1.1}.get(int(quant_bits), 2.0) if str(quant_bits).isdigit() else 2.0
    full = tuner == "full"
    grad_bytes, optim_bytes = (2.0, 12.0) if full else (0.0, 0.0)
    if megatron_split is not None:
        w_div, g_div, o_div = megatron_split, megatron_split, world
    else:
        w_div, g_div, o_div = _deepspeed_shards(str(deepspeed), world)
    per_param = weight_bytes * (1 + (refs if full else 0)) / w_div + grad_bytes / g_div + optim_bytes / o_div
    return params.total_b * 1e9 * per_param / GIB + 1.5 + 0.25 * params.active_b


def serving_gib(params: Params, tensor_parallel: int) -> float:
    """Weights over the TP GPUs plus 20% and 1 GiB for KV cache and runtime: the least vLLM needs to start."""
    return params.total_b * 1e9 * 2 / GIB / tensor_parallel * 1.2 + 1


def verdict(need_gib: float, have_gib: float, what: str) -> Verdict:
    text = f"{what}: about {need_gib:.0f} GiB per GPU needed, {have_gib:g} GiB per GPU available"
    if need_gib > have_gib:
        return Verdict("refuse", text)
    if need_gib > WARN_FRACTION * have_gib:
        return Verdict("warn", text + " (tight)")
    return Verdict("ok", text)


def reference_models(rlhf_type: str | None) -> int:
    return _REFERENCE_MODELS.get(rlhf_type or "", 0)
