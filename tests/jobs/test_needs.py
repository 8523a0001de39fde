"""A job's needs: derived from its kind and arguments, looked up in the ms_swift role's table, checked against a
node's recorded distributions, refused in one line; `swiftfleet needs` and `make setup JOB=...` install them."""

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from swiftfleet.jobs import needs, spec
from tests.conftest import REPO, run_cli

SHIPPED = {
    "app": ["app", "vllm"],
    "deploy": ["vllm"],
    "dpo": [],
    "eval": ["eval"],
    "full-sft-deepspeed": ["deepspeed"],
    "infer": ["vllm"],
    "grpo-vllm": ["vllm", "deepspeed", "math-verify"],
    "grpo-server": ["deepspeed", "math-verify"],
    "lora-sft": [],
    "megatron-export": ["megatron"],
    "megatron-moe-sft": ["megatron"],
    "merge-lora": [],
    "qlora": ["bnb"],
    "sample": ["vllm", "math-verify"],
    "quantize-awq": ["awq"],
    "tiny-lora": [],
    "web-ui": ["app"],
    "rehearsal/tiny-eval": ["eval"],
    "rehearsal/tiny-infer": [],
    "rehearsal/tiny-merge": [],
    "rehearsal/tiny-server": [],
}
JOB_FILES = sorted([*(REPO / "jobs").glob("*.yml"), *(REPO / "jobs" / "rehearsal").glob("*.yml")])


def _name(path: Path) -> str:
    return str(path.relative_to(REPO / "jobs").with_suffix(""))


def _installed(*need_names: str) -> dict[str, str]:
    """A node's distributions that satisfy exactly these needs' pins, as stack_report.py names them."""
    pins = [Requirement(s) for n in need_names for s in needs.specs(n)]
    return {p.name: next(iter(p.specifier)).version for p in pins}


def test_every_shipped_job_is_listed() -> None:
    assert sorted(_name(p) for p in JOB_FILES) == sorted(SHIPPED)


@pytest.mark.parametrize("path", JOB_FILES, ids=_name)
def test_a_shipped_job_maps_to_its_needs(path: Path) -> None:
    job = yaml.safe_load(path.read_text())["job"]
    assert needs.job_needs(job["kind"], job.get("args", {}), job.get("model")) == SHIPPED[_name(path)]
    if "rollout" in job:  # the job's own rollout servers serve with vLLM
        assert list(needs.of_job(spec.load_job(path))) == [*SHIPPED[_name(path)], "vllm"]


@pytest.mark.parametrize(
    ("command", "args", "model", "expected"),
    [
        ("swift sft", {"quant_method": "bnb", "quant_bits": 8}, "org/m", {"bnb": "args.quant_method"}),
        (
            "swift export",
            {"quant_method": "gptq_v2", "quant_bits": 4},
            "org/m",
            {"gptq": "args.quant_method"},
        ),
        ("swift infer", {"quant_method": "hqq", "quant_bits": 4}, "org/m", {"hqq": "args.quant_method"}),
        ("swift sft", {"quant_method": "fp8"}, "org/m", {}),  # transformers' own: a GPU, no package
        ("swift deploy", {"infer_backend": "sglang"}, "org/m", {"sglang": "args.infer_backend"}),
        ("swift deploy", {"infer_backend": "transformers"}, "org/m", {}),
        ("swift rlhf", {"use_vllm": "true", "vllm_mode": "server"}, "org/m", {"vllm": "args.use_vllm"}),
        ("swift rlhf", {"use_vllm": False}, "org/m", {}),
        ("swift sft", {"use_liger_kernel": True}, "org/m", {"liger": "args.use_liger_kernel"}),
        ("swift sft", {"attn_impl": "flash_attn"}, "org/m", {"flash-attn": "args.attn_impl"}),
        ("swift sft", {"attn_impl": "sdpa"}, "org/m", {}),
        ("megatron rlhf", {"use_vllm": True}, "org/m", {"megatron": "kind", "vllm": "args.use_vllm"}),
        ("swift export", {"to_mcore": True}, "org/m", {"megatron": "args.to_mcore"}),
        (
            "swift eval",
            {"eval_backend": "OpenCompass"},
            "m",
            {"eval": "kind", "opencompass": "args.eval_backend"},
        ),
        ("swift eval", {"eval_backend": "VLMEvalKit"}, "m", {"eval": "kind", "vlmeval": "args.eval_backend"}),
        ("swift rlhf", {"reward_funcs": "cosine"}, "org/m", {"math-verify": "args.reward_funcs"}),
        ("swift rlhf", {"reward_funcs": ["format"]}, "org/m", {}),
        ("swift sft", {}, "Qwen/Qwen2.5-VL-7B-Instruct", {"multimodal": "model"}),
        ("swift sft", {"model_type": "qwen3_omni_moe"}, "./ckpt", {"multimodal": "args.model_type"}),
        ("swift sft", {}, "Qwen/Qwen2.5-7B-Instruct", {}),
        ("swift deploy", {}, "Qwen/Qwen2.5-7B-Instruct-AWQ", {"gptq": "model"}),  # transformers loads it
        (
            "swift deploy",
            {"infer_backend": "vllm"},
            "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4",
            {"vllm": "args.infer_backend"},
        ),
    ],
)
def test_each_rule(command: str, args: dict[str, Any], model: str, expected: dict[str, str]) -> None:
    assert needs.need_sources(command, args, model) == expected


def test_every_derivable_need_is_in_the_table() -> None:
    derivable = {
        *needs.QUANT_NEEDS.values(),
        *needs.BACKEND_NEEDS.values(),
        *needs.EVAL_BACKEND_NEEDS.values(),
        *(
            "megatron",
            "vllm",
            "deepspeed",
            "liger",
            "flash-attn",
            "eval",
            "math-verify",
            "multimodal",
            "gptq",
        ),
    }
    assert derivable <= set(needs.extra_table())


@pytest.mark.parametrize("need", sorted(needs.extra_table()))
def test_every_need_installs_pinned_specs_or_says_why_it_cannot(need: str) -> None:
    entry = needs.extra_table()[need]
    if "unavailable" in entry:
        assert needs.specs(need) == [] and len(entry["unavailable"]) > 20
        return
    assert needs.specs(need)
    for text in needs.specs(need):
        operators = [s.operator for s in Requirement(text).specifier]
        assert operators == ["=="], f"{need}: {text} is not pinned with =="


def test_the_roles_choices_are_the_installable_needs() -> None:
    specs = yaml.safe_load((REPO / "roles" / "ms_swift" / "meta" / "argument_specs.yml").read_text())
    choices = specs["argument_specs"]["main"]["options"]["ms_swift_extras"]["choices"]
    table = needs.extra_table()
    assert sorted(choices) == sorted(n for n in table if "unavailable" not in table[n])


def test_bnb_is_not_gpu_only_and_the_engines_are() -> None:
    """tests/jobs/test_tiny_qlora.py trains bnb 4-bit on CPU; vLLM, SGLang, flash-attn need CUDA."""
    table = needs.extra_table()
    assert "gpu_only" not in table["bnb"]
    assert all(table[n].get("gpu_only") for n in ("vllm", "sglang", "flash-attn", "awq", "gptq", "liger"))


def test_missing_compares_pep503_names_and_pinned_versions() -> None:
    assert needs.missing(["bnb"], _installed("bnb")) == []
    assert needs.missing(["bnb"], {}) == [("bnb", needs.specs("bnb")[0])]
    assert needs.missing(["bnb"], {"bitsandbytes": "0.1.0"}) == [("bnb", needs.specs("bnb")[0])]
    spelled = {name.upper().replace("-", "_"): version for name, version in _installed("gptq").items()}
    assert needs.missing(["gptq"], spelled) == []
    optimum_only = {k: v for k, v in _installed("gptq").items() if k == "optimum"}
    assert needs.missing(["gptq"], optimum_only) == [("gptq", " ".join(needs.specs("gptq")[1:]))]
    assert needs.missing(["eval", "bnb"], _installed("eval")) == [("bnb", needs.specs("bnb")[0])]


def test_a_local_version_label_satisfies_a_pin_and_junk_does_not() -> None:
    cpu_build = {k: (f"{v}+cpu" if k == "torchvision" else v) for k, v in _installed("multimodal").items()}
    assert needs.missing(["multimodal"], cpu_build) == []
    assert needs.missing(["bnb"], {"bitsandbytes": "not installed"}) == [("bnb", needs.specs("bnb")[0])]


def test_an_unavailable_need_is_always_missing_and_refused_with_its_reason() -> None:
    assert needs.missing(["lmdeploy"], {"lmdeploy": "0.18.0"}) == [("lmdeploy", "")]
    text = needs.refusal("lmdeploy", "", "trainers-0", gpu_only=False, node_has_gpu=True)
    assert text.startswith("lmdeploy cannot be installed beside the pinned stack: ") and "torch" in text


def test_refusal_suggests_setup_with_the_job_file() -> None:
    spec = needs.specs("bnb")[0]
    text = needs.refusal(
        "bnb", spec, "trainers-0", False, False, job_file="jobs/qlora.yml", cluster_file="clusters/g6e.yml"
    )
    assert text == (
        f"bnb needs {spec}, which trainers-0 does not have: "
        "make setup CLUSTER=clusters/g6e.yml JOB=jobs/qlora.yml (installs what the job needs)"
    )


def test_refusal_of_a_gpu_only_need_on_a_cpu_node_asks_for_a_gpu_node() -> None:
    text = needs.refusal("vllm", needs.specs("vllm")[0], "node-1", gpu_only=True, node_has_gpu=False)
    assert "node-1 has no GPU" in text and "make setup" not in text
    on_gpu = needs.refusal("vllm", needs.specs("vllm")[0], "node-1", gpu_only=True, node_has_gpu=True)
    assert "make setup" in on_gpu


def test_the_needs_command_prints_json_and_refuses_an_unavailable_need(tmp_path: Path) -> None:
    done = run_cli("needs", "jobs/grpo-vllm.yml")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '["vllm", "deepspeed", "math-verify"]'
    job = tmp_path / "lm.yml"
    job.write_text(
        "job: {name: lm, kind: swift deploy, model: Qwen/Qwen2.5-7B-Instruct, args: {infer_backend: lmdeploy}}\n"
    )
    done = run_cli("needs", str(job))
    assert done.returncode == 2
    assert f"job file {job}: args.infer_backend: lmdeploy cannot be installed" in done.stderr


def _make_n(*args: str) -> str:
    done = subprocess.run(["make", "-n", *args], cwd=REPO, capture_output=True, text=True, check=True)
    return done.stdout


def test_make_setup_with_a_job_installs_its_needs() -> None:
    with_job = _make_n("setup", "JOB=jobs/qlora.yml")
    assert "extras=$(swiftfleet needs jobs/qlora.yml)" in with_job
    assert 'playbooks/setup.yml -e "{\\"ms_swift_extras\\": $extras}"' in with_job
    assert "swiftfleet needs" not in _make_n("setup") and "ms_swift_extras" not in _make_n("setup")


def test_the_controllers_ms_swift_gets_the_tables_bitsandbytes_pin() -> None:
    recipe = _make_n("-B", ".venv-swift/.installed")
    sed = re.search(r"\$\((sed -n '[^']*bitsandbytes[^']*' roles/ms_swift/vars/main.yml)\)", recipe)
    assert sed, recipe
    done = subprocess.run(["bash", "-c", sed[1]], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == needs.specs("bnb")[0]
