"""What a job needs on its nodes beyond ms-swift itself, derived from its kind and arguments.

The table of needs is the ms_swift role's `ms_swift_extra_map` (roles/ms_swift/vars/main.yml): per need, the
pinned packages the role installs, whether they run on GPU nodes only, or why no release fits the pinned stack.
This module names no package: it maps ms-swift arguments to the table's keys, and compares the table's pins
with what setup recorded on a node (stack_report.py's "distributions"), so a job that would fail on the nodes
for want of a package is refused before anything is uploaded.

Not derived (nothing in the job file says it): what `external_plugins` and custom reward functions import, the
packages other multimodal families ask for (InternVL, MiniCPM-V, GLM-4V: timm, pytorchvideo, soundfile),
flash-attention 3 (`attn_impl: flash_attention_3`, a source build the table does not carry), and fp8, which
needs a GPU of compute capability 8.9+ rather than a package.
"""

import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion

from swiftfleet import paths, stack
from swiftfleet.errors import SwiftfleetError
from swiftfleet.jobs import ms_swift_args
from swiftfleet.jobs.spec import Job, load_job

VARS_FILE = paths.REPO_ROOT / "roles" / "ms_swift" / "vars" / "main.yml"

# quant_method value -> need. ms-swift 4.6.0 quantizes on load (sft/infer/deploy: bnb, hqq, eetq, quanto) or in
# `swift export` (awq, gptq, gptq_v2, bnb); bnb takes quant_bits 4 or 8, both from bitsandbytes. fp8 is
# transformers' own FineGrainedFP8 (no package).
QUANT_NEEDS = {
    "bnb": "bnb",
    "hqq": "hqq",
    "eetq": "eetq",
    "quanto": "quanto",
    "awq": "awq",
    "gptq": "gptq",
    "gptq_v2": "gptq",
}
# infer_backend value -> need (transformers and pt are ms-swift's own; transformers is the default).
BACKEND_NEEDS = {"vllm": "vllm", "sglang": "sglang", "lmdeploy": "lmdeploy"}
EVAL_BACKEND_NEEDS = {"OpenCompass": "opencompass", "VLMEvalKit": "vlmeval"}
# Built-in GRPO rewards that import math_verify (MathAccuracy; cosine wraps it): swift/rewards/orm.py.
MATH_REWARDS = frozenset({"accuracy", "cosine"})
# The Qwen-VL/Omni family by hub id (Qwen2.5-VL-7B-Instruct) or model_type (qwen2_5_vl, qwen3_omni_moe).
QWEN_VL = re.compile(r"qwen[\d.]*(-|_)?[\d_]*(vl|omni)", re.IGNORECASE)
# A pre-quantized checkpoint by its hub name (Qwen2.5-7B-Instruct-AWQ, ...-GPTQ-Int4).
PREQUANTIZED = re.compile(r"[-_](awq|gptq)([-_]|$)", re.IGNORECASE)
ENGINES = frozenset(BACKEND_NEEDS)


@cache
def extra_table() -> dict[str, dict[str, Any]]:
    """The role's `ms_swift_extra_map`: need -> {extra, packages, compiled, gpu_only, unavailable}, with the pins
    it takes from the compatibility table (stack_packages, stack_compiled) filled in; read once, shared: do not
    modify it."""
    return stack.resolve_extras(yaml.safe_load(VARS_FILE.read_text())["ms_swift_extra_map"])


def need_sources(command: str, args: Mapping[str, Any], model: str | None) -> dict[str, str]:
    """Each need of the job with the job field that brings it in ({"bnb": "args.quant_method"}), in rule order."""
    found: dict[str, str] = {}
    model = model or ""  # the web UI names none

    def need(name: str, where: str) -> None:
        found.setdefault(name, where)

    # `swift app` and `swift web-ui` are ms-swift's Gradio UIs.
    if command in ("swift app", "swift web-ui"):
        need("app", "kind")
    # Every `megatron` command runs Megatron-SWIFT: ms-swift[megatron] (megatron-core, mcore-bridge).
    if command.startswith("megatron "):
        need("megatron", "kind")
    # `swift export --to_mcore/--to_hf` converts weights with mcore-bridge and megatron-core.
    if command == "swift export" and (
        ms_swift_args.is_on(args.get("to_mcore")) or ms_swift_args.is_on(args.get("to_hf"))
    ):
        need("megatron", "args.to_mcore" if ms_swift_args.is_on(args.get("to_mcore")) else "args.to_hf")
    # --quant_method: the quantization backend (QUANT_NEEDS).
    method = args.get("quant_method")
    if method in QUANT_NEEDS:
        need(QUANT_NEEDS[method], "args.quant_method")
    # --infer_backend vllm|sglang|lmdeploy (infer, deploy, eval, rollout): that engine.
    backend = args.get("infer_backend", "transformers")
    if backend in BACKEND_NEEDS:
        need(BACKEND_NEEDS[backend], "args.infer_backend")
    # --sampler_engine vllm|lmdeploy (swift sample; swift/pipelines/sampling/vanilla_sampler.py): that engine.
    engine = args.get("sampler_engine", "transformers")
    if engine in BACKEND_NEEDS:
        need(BACKEND_NEEDS[engine], "args.sampler_engine")
    # --use_vllm true (GRPO, GKD): colocate mode generates with vLLM in the trainers; server mode syncs weights
    # through vLLM's PyNcclCommunicator (swift/rlhf_trainers/vllm_client.py), so both need vllm.
    if ms_swift_args.is_on(args.get("use_vllm")):
        need("vllm", "args.use_vllm")
    # --deepspeed zero2|zero3|<config>: DeepSpeed.
    if args.get("deepspeed"):
        need("deepspeed", "args.deepspeed")
    # --use_liger_kernel true: Liger's Triton kernels.
    if ms_swift_args.is_on(args.get("use_liger_kernel")):
        need("liger", "args.use_liger_kernel")
    # --attn_impl flash_attn|flash_attention_2: flash-attn 2 (ms-swift's AttnImpl.to_use_flash_attn).
    if args.get("attn_impl") in {"flash_attn", "flash_attention_2"}:
        need("flash-attn", "args.attn_impl")
    # `swift eval` runs evalscope; --eval_backend OpenCompass|VLMEvalKit adds that backend.
    if command == "swift eval":
        need("eval", "kind")
        backend_need = EVAL_BACKEND_NEEDS.get(str(args.get("eval_backend", "Native")))
        if backend_need:
            need(backend_need, "args.eval_backend")
    # --reward_funcs accuracy|cosine: math_verify.
    rewards = args.get("reward_funcs") or []
    if MATH_REWARDS.intersection([rewards] if isinstance(rewards, str) else rewards):
        need("math-verify", "args.reward_funcs")
    # --orm_model accuracy|cosine (swift sample scores its samples with the same built-in rewards).
    if args.get("orm_model") in MATH_REWARDS:
        need("math-verify", "args.orm_model")
    # A Qwen-VL/Omni model: qwen_vl_utils, decord and torchvision (its ModelMeta.requires).
    if QWEN_VL.search(model):
        need("multimodal", "model")
    elif QWEN_VL.search(str(args.get("model_type", ""))):
        need("multimodal", "args.model_type")
    # A pre-quantized AWQ/GPTQ checkpoint loaded by transformers (training, export, the transformers backend):
    # transformers 5.19 loads both through gptqmodel and optimum. vLLM, SGLang and LMDeploy bring their own kernels.
    if PREQUANTIZED.search(model) and backend not in ENGINES:
        need("gptq", "model")
    return found


def job_needs(command: str, args: Mapping[str, Any], model: str | None) -> list[str]:
    """The extras (keys of extra_table()) a job of this kind, with these ms-swift arguments and model, needs."""
    return list(need_sources(command, args, model))


def specs(need: str) -> list[str]:
    """The pinned requirement specs a need installs (none for an unavailable one)."""
    entry = extra_table()[need]
    return [*entry.get("packages", []), *entry.get("compiled", [])]


def _satisfied(requirement: str, installed: Mapping[str, str]) -> bool:
    req = Requirement(requirement)
    have = installed.get(canonicalize_name(req.name))
    if have is None:
        return False
    try:
        return req.specifier.contains(have, prereleases=True)
    except InvalidVersion:
        return False


def missing(needs: list[str], installed: Mapping[str, str]) -> list[tuple[str, str]]:
    """(need, the specs it lacks, space-separated) for each need whose pins `installed` does not satisfy.

    `installed` maps PEP 503 names to versions, as stack_report.py records a node's environment; a local version
    label (+cpu) satisfies an == pin. An unavailable need is always missing, with an empty spec."""
    table = extra_table()
    normalized: dict[str, str] = {canonicalize_name(name): version for name, version in installed.items()}
    result = []
    for need in needs:
        if "unavailable" in table[need]:
            result.append((need, ""))
            continue
        lacking = [s for s in specs(need) if not _satisfied(s, normalized)]
        if lacking:
            result.append((need, " ".join(lacking)))
    return result


def unavailable(need: str) -> str | None:
    """Why no release of this need fits the pinned stack, as one clause; None when it installs."""
    reason = extra_table()[need].get("unavailable")
    return f"{need} cannot be installed beside the pinned stack: {reason}" if reason else None


def refusal(
    need: str,
    spec: str,
    host: str,
    gpu_only: bool,
    node_has_gpu: bool,
    *,
    job_file: str = "<this job file>",
    cluster_file: str = "<cluster file>",
) -> str:
    """Why a job cannot run on `host` for want of `need` (one of missing()'s pairs), and what to do about it."""
    blocked = unavailable(need)
    if blocked:
        return blocked
    if gpu_only and not node_has_gpu:
        return f"{need} needs {spec}, which runs on GPU nodes only, and {host} has no GPU: use a GPU cluster"
    return (
        f"{need} needs {spec}, which {host} does not have: "
        f"make setup CLUSTER={cluster_file} JOB={job_file} (installs what the job needs)"
    )


def of_job(job: Job) -> dict[str, str]:
    """need_sources of a whole job: its command's, and vllm for its own rollout servers (they serve with vLLM; the
    trainers sync weights to them through vLLM's communicator)."""
    found = need_sources(job.command, job.args, job.model)
    if job.rollout is not None:
        found.setdefault("vllm", "rollout")
    return found


def job_file_needs(path: Path) -> list[str]:
    """The needs of a job file, checked as every command checks it, for `make setup JOB=...` (`swiftfleet
    needs`); an unavailable need is an error naming the field that brings it in."""
    found = of_job(load_job(path))
    for need, where in found.items():
        blocked = unavailable(need)
        if blocked:
            raise SwiftfleetError(f"job file {path}: {where}: {blocked}")
    return list(found)
