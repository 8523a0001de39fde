#!/usr/bin/env python3
"""Report this node's training stack as one JSON object, and whether its parts fit together.

Run with the ms-swift environment's python (so its torch and packages are the ones seen). Absent parts are
reported as "not installed" / "no GPU"; only combinations that cannot work are listed under "issues".
Standard library only: it must run on a node where nothing is installed yet.
"""

import argparse
import glob
import importlib.metadata as md
import json
import os
import re
import shutil
import socket
import subprocess

ABSENT = "not installed"
NO_GPU = "no GPU"
# Distribution names to try, first match wins (projects renamed their wheels over time).
PACKAGES = {
    "ms_swift": ("ms-swift", "ms_swift"),
    "transformer_engine": ("transformer-engine", "transformer_engine", "transformer-engine-torch"),
    "apex": ("apex",),
    "megatron_core": ("megatron-core", "megatron_core"),
    "flash_attn": ("flash-attn", "flash_attn"),
}
NCCL_PLUGIN_GLOBS = ("/opt/amazon/ofi-nccl/lib/libnccl-net*.so", "/opt/aws-ofi-nccl/lib/libnccl-net*.so")
MEGATRON_CORE_RANGE = ((0, 16), (0, 20))  # Megatron-SWIFT: >=0.16,<0.20
FLASH_ATTN_MAX_WITH_TE = (2, 8, 3)  # the newest flash-attn transformer_engine supports


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version.split("+")[0])[:3])


def run(cmd: list[str]) -> str | None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return None
    return done.stdout if done.returncode == 0 else None


def gpu_info() -> dict[str, object]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return {"gpu": NO_GPU, "gpu_count": 0, "driver": NO_GPU, "driver_cuda": None}
    listing = run([smi, "--query-gpu=name,driver_version", "--format=csv,noheader"]) or ""
    rows = [[c.strip() for c in line.split(",")] for line in listing.splitlines() if line.strip()]
    header = run([smi]) or ""
    cuda = re.search(r"CUDA Version:\s*(\d+\.\d+)", header)
    if not rows:
        return {"gpu": "nvidia-smi fails", "gpu_count": 0, "driver": "unknown", "driver_cuda": None}
    return {
        "gpu": f"{len(rows)}x {rows[0][0]}",
        "gpu_count": len(rows),
        "driver": rows[0][1] if len(rows[0]) > 1 else "unknown",
        "driver_cuda": cuda.group(1) if cuda else None,
    }


def cuda_toolkit() -> str:
    """The toolkit builds use: $CUDA_HOME (the cuda role's env file sets it), else /usr/local/cuda, else PATH."""
    cuda_home = os.environ.get("CUDA_HOME")
    candidates = [os.path.join(cuda_home, "bin", "nvcc")] if cuda_home else []
    candidates += ["/usr/local/cuda/bin/nvcc", shutil.which("nvcc") or ""]
    for nvcc in candidates:
        if nvcc and os.access(nvcc, os.X_OK):
            found = re.search(r"release (\d+\.\d+)", run([nvcc, "--version"]) or "")
            if found:
                return found.group(1)
    return ABSENT


def torch_info() -> dict[str, object]:
    try:
        import torch  # optional: the report says "not installed" instead of failing
    except ImportError:
        return {"torch": ABSENT, "torch_cuda": None, "torch_cuda_available": False}
    return {
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "torch_cuda_available": bool(torch.cuda.is_available()),
    }


def package_version(names: tuple[str, ...]) -> str:
    for name in names:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            continue
    return ABSENT


def distributions() -> dict[str, str]:
    """Every distribution of the environment, by PEP 503 name: job plans check a job's pinned needs against it."""
    found = {}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if name:  # a broken .dist-info has no name: nothing to match
            # The first on sys.path is the one that imports.
            found.setdefault(re.sub(r"[-_.]+", "-", name).lower(), dist.version)
    return dict(sorted(found.items()))


def nccl_plugin() -> str:
    for pattern in NCCL_PLUGIN_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return ABSENT


def major_minor(version: str | None) -> str | None:
    return ".".join(version.split(".")[:2]) if version else None


def issues_of(r: dict[str, object], expect: dict[str, str]) -> list[str]:
    issues = []
    has_gpu = int(r["gpu_count"]) > 0  # type: ignore[call-overload]
    torch_cuda = r["torch_cuda"]
    for name, want in expect.items():
        got = str(r.get(name.replace("-", "_"), ABSENT))
        if got == ABSENT or got.split("+")[0] != want:
            issues.append(f"{name} is {got}, expected {want}")
    if r["torch"] == ABSENT:
        issues.append("torch is not installed")
    elif has_gpu and torch_cuda is None:
        issues.append("the node has a GPU but torch is a CPU build")
    elif has_gpu and not r["torch_cuda_available"]:
        issues.append(f"torch (CUDA {torch_cuda}) cannot use the GPU: driver {r['driver']} too old or broken")
    if (
        has_gpu
        and torch_cuda
        and r["driver_cuda"]
        and version_tuple(str(torch_cuda)) > version_tuple(str(r["driver_cuda"]))
    ):
        issues.append(f"torch is built for CUDA {torch_cuda}, the driver supports up to {r['driver_cuda']}")
    for ext in ("transformer_engine", "apex", "flash_attn"):
        if r[ext] == ABSENT:
            continue
        if torch_cuda is None:
            issues.append(f"{ext} is installed but torch has no CUDA")
        toolkit = str(r["cuda_toolkit"])
        if (
            torch_cuda is not None
            and toolkit != ABSENT
            and major_minor(toolkit) != major_minor(str(torch_cuda))
        ):
            issues.append(f"{ext} builds against CUDA {r['cuda_toolkit']} but torch uses CUDA {torch_cuda}")
    if r["megatron_core"] != ABSENT:
        low, high = MEGATRON_CORE_RANGE
        if not low <= version_tuple(str(r["megatron_core"]))[:2] < high:
            issues.append(f"megatron-core {r['megatron_core']} is outside >=0.16,<0.20")
    if (
        r["flash_attn"] != ABSENT
        and r["transformer_engine"] != ABSENT
        and version_tuple(str(r["flash_attn"])) > FLASH_ATTN_MAX_WITH_TE
    ):
        issues.append(f"flash-attn {r['flash_attn']} is newer than transformer_engine supports (2.8.3)")
    if int(r["efa_devices"]) > 0 and r["nccl_plugin"] == ABSENT:  # type: ignore[call-overload]
        issues.append("EFA devices present but no aws-ofi-nccl plugin: NCCL would fall back to sockets")
    return issues


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--expect", default="{}", help='JSON object: package to version, e.g. {"torch": "2.13.0"}'
    )
    args = parser.parse_args()
    expect = {str(k): str(v) for k, v in json.loads(args.expect).items()}
    report: dict[str, object] = {"host": socket.gethostname()}
    report.update(gpu_info())
    report["cuda_toolkit"] = cuda_toolkit()
    report.update(torch_info())
    report.update({key: package_version(names) for key, names in PACKAGES.items()})
    report["distributions"] = distributions()
    report["nccl_plugin"] = nccl_plugin()
    report["efa_devices"] = len(glob.glob("/sys/class/infiniband/rdmap*"))
    report["issues"] = issues_of(report, expect)
    report["consistent"] = not report["issues"]
    print(json.dumps(report, sort_keys=True))


if __name__ == "__main__":
    main()
