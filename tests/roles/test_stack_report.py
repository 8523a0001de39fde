"""The stack_check role's report script against fake stacks: a fake driver, toolkit, torch and packages.

The script is the real one the role ships; only what it inspects is faked (executables on PATH, a toolkit under
CUDA_HOME, a `torch` module and distribution metadata on PYTHONPATH), so every consistency rule is exercised
without a GPU.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "roles" / "stack_check" / "files" / "stack_report.py"
GOOD_GPU = {
    "driver_cuda": "12.8",
    "nvcc": "12.8",
    "torch": ("2.13.0+cu128", "12.8", True),
    "dists": {
        "ms-swift": "4.6.0",
        "transformer-engine": "2.8.0",
        "apex": "0.1",
        "megatron-core": "0.16.1",
        "flash-attn": "2.8.3",
    },
}


def _stack(root: Path, stack: dict, expect: dict[str, str] | None = None) -> dict:  # type: ignore[type-arg]
    (root / "bin").mkdir(parents=True)
    (root / "site").mkdir()
    env = {"PATH": f"{root / 'bin'}:/usr/bin:/bin", "PYTHONPATH": str(root / "site")}
    if stack.get("driver_cuda"):
        smi = root / "bin" / "nvidia-smi"
        smi.write_text(
            '#!/bin/sh\ncase "$1" in --query-gpu*) printf "NVIDIA H100 80GB HBM3, 570.86\\nNVIDIA H100 80GB HBM3, 570.86\\n";;'
            f' *) echo "CUDA Version: {stack["driver_cuda"]}";; esac\n'
        )
        smi.chmod(0o755)
    if stack.get("nvcc"):
        (root / "cuda" / "bin").mkdir(parents=True)
        nvcc = root / "cuda" / "bin" / "nvcc"
        nvcc.write_text(f'#!/bin/sh\necho "Cuda compilation tools, release {stack["nvcc"]}, V0"\n')
        nvcc.chmod(0o755)
        env["CUDA_HOME"] = str(root / "cuda")
    if stack.get("torch"):
        version, cuda, available = stack["torch"]
        (root / "site" / "torch").mkdir()
        (root / "site" / "torch" / "__init__.py").write_text(
            f"import types\n__version__ = {version!r}\nversion = types.SimpleNamespace(cuda={cuda!r})\n"
            f"cuda = types.SimpleNamespace(is_available=lambda: {available!r})\n"
        )
    for name, version in stack.get("dists", {}).items():
        info = root / "site" / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--expect", json.dumps(expect or {})],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_a_matching_gpu_stack_is_consistent(tmp_path: Path) -> None:
    r = _stack(tmp_path, GOOD_GPU, expect={"ms-swift": "4.6.0", "torch": "2.13.0"})
    assert r["issues"] == [] and r["consistent"] is True
    assert (r["gpu"], r["gpu_count"], r["driver"], r["driver_cuda"]) == (
        "2x NVIDIA H100 80GB HBM3",
        2,
        "570.86",
        "12.8",
    )
    assert (r["cuda_toolkit"], r["torch"], r["torch_cuda"]) == ("12.8", "2.13.0+cu128", "12.8")
    assert (r["transformer_engine"], r["apex"], r["megatron_core"], r["flash_attn"]) == (
        "2.8.0",
        "0.1",
        "0.16.1",
        "2.8.3",
    )


@pytest.mark.parametrize(
    ("change", "issue"),
    [
        ({"nvcc": "12.4"}, "apex builds against CUDA 12.4 but torch uses CUDA 12.8"),
        ({"nvcc": "12.4"}, "transformer_engine builds against CUDA 12.4 but torch uses CUDA 12.8"),
        ({"driver_cuda": "12.4"}, "torch is built for CUDA 12.8, the driver supports up to 12.4"),
        ({"torch": ("2.13.0+cu128", "12.8", False)}, "cannot use the GPU"),
        ({"torch": ("2.13.0+cpu", None, False)}, "the node has a GPU but torch is a CPU build"),
        (
            {"dists": {**GOOD_GPU["dists"], "megatron-core": "0.21.0"}},
            "megatron-core 0.21.0 is outside >=0.16,<0.20",
        ),
        (
            {"dists": {**GOOD_GPU["dists"], "flash-attn": "2.8.4"}},
            "flash-attn 2.8.4 is newer than transformer_engine",
        ),
        ({"dists": {**GOOD_GPU["dists"], "ms-swift": "4.5.3"}}, "ms-swift is 4.5.3, expected 4.6.0"),
    ],
)
def test_a_mismatch_is_reported(tmp_path: Path, change: dict, issue: str) -> None:  # type: ignore[type-arg]
    r = _stack(tmp_path, {**GOOD_GPU, **change}, expect={"ms-swift": "4.6.0"})
    assert r["consistent"] is False
    assert any(issue in i for i in r["issues"]), r["issues"]


def test_a_cpu_node_reports_absent_parts_as_such(tmp_path: Path) -> None:
    r = _stack(tmp_path, {"torch": ("2.13.0+cpu", None, False), "dists": {"ms-swift": "4.6.0"}})
    assert (r["gpu"], r["driver"], r["gpu_count"]) == ("no GPU", "no GPU", 0)
    assert r["transformer_engine"] == r["apex"] == r["flash_attn"] == r["nccl_plugin"] == "not installed"
    assert r["consistent"] is True, r["issues"]


def test_a_node_without_torch_is_inconsistent(tmp_path: Path) -> None:
    r = _stack(tmp_path, {})
    assert r["torch"] == "not installed" and "torch is not installed" in r["issues"]


def test_every_distribution_is_recorded_by_its_pep503_name(tmp_path: Path) -> None:
    r = _stack(tmp_path, {"dists": {"ms-swift": "4.6.0", "Mcore_Bridge.Extra": "1.6.5"}})
    dists = r["distributions"]
    assert dists["ms-swift"] == "4.6.0" and dists["mcore-bridge-extra"] == "1.6.5"
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name) for name in dists), dists
