"""The kit's compatibility table (data/stack.yml) and the choices made from it, shared by Python and the roles.

The roles reach these functions through swiftfleet.filters (filter_plugins/swiftfleet.py re-exports them), so a
GPU node's torch build, the CUDA releases the cuda role accepts and the companion pins come from one file.
"""

import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from packaging.version import InvalidVersion, Version

from swiftfleet.errors import SwiftfleetError

TABLE_FILE = Path(__file__).resolve().parent / "data" / "stack.yml"
# `nvidia-smi --query-gpu=driver_version --format=csv,noheader` (one line per GPU) or nvidia-smi's banner.
_QUERY_LINE = re.compile(r"^\s*(\d+\.\d+(?:\.\d+)?)\s*$", re.MULTILINE)
_BANNER = re.compile(r"Driver Version:\s*(\d+\.\d+(?:\.\d+)?)")


class StackError(SwiftfleetError):
    """The table lacks what was asked, or a driver version cannot be read."""


@cache
def table() -> dict[str, Any]:
    """The whole table, read once; shared: do not modify it."""
    data: dict[str, Any] = yaml.safe_load(TABLE_FILE.read_text())
    return data


def driver_minimum() -> dict[str, str]:
    """CUDA release ("13.2") -> the minimum Linux driver it needs ("595")."""
    return {release: str(row["driver"]) for release, row in table()["cuda"].items()}


def torch_cuda_builds(torch_version: str) -> list[str]:
    """The CUDA releases torch_version has builds for, oldest first."""
    row = table()["torch"].get(str(torch_version))
    if row is None:
        known = ", ".join(table()["torch"])
        raise StackError(f"torch {torch_version} has no row in {TABLE_FILE.name} (known: {known})")
    return sorted((str(c) for c in row["cuda"]), key=Version)


def pin(package: str) -> str:
    """The pinned version (or, for apex, commit) of a companion package."""
    row = table()["packages"].get(package)
    if row is None:
        raise StackError(
            f"{package} has no pin in {TABLE_FILE.name} (known: {', '.join(table()['packages'])})"
        )
    return str(row.get("version") or row["commit"])


def requirement(package: str) -> str:
    """`name==version` for a versioned package of the table."""
    return f"{package}=={pin(package)}"


def driver_version(nvidia_smi_output: str) -> str:
    """The driver version in nvidia-smi's output (query lines or banner); the lowest when GPUs disagree."""
    found = _QUERY_LINE.findall(nvidia_smi_output) or _BANNER.findall(nvidia_smi_output)
    if not found:
        shown = " ".join(nvidia_smi_output.split())[:120] or "nothing"
        raise StackError(f"no NVIDIA driver version in nvidia-smi's output ({shown})")
    return str(min(found, key=Version))


def runs_on(release: str, driver: str) -> bool:
    """Whether a driver meets the table's minimum for a CUDA release (False for a release not in the table)."""
    minimum = driver_minimum().get(release)
    return minimum is not None and Version(driver) >= Version(minimum)


def backend(cuda: str) -> str:
    """uv's --torch-backend name of a CUDA release: 13.2 -> cu132."""
    return "cu" + cuda.replace(".", "")


def choose_torch_build(nvidia_smi_output: str, torch_version: str) -> dict[str, Any]:
    """The torch CUDA build for a node: the newest build of torch_version whose minimum driver the node's driver
    meets. Returns {torch, driver, cuda, backend, accepted (the builds the driver runs), error}; error is one line
    ("" when a build fits) so that a role can stop with it before installing anything."""
    choice: dict[str, Any] = {
        "torch": str(torch_version),
        "driver": "",
        "cuda": "",
        "backend": "",
        "accepted": [],
        "error": "",
    }
    try:
        builds = torch_cuda_builds(torch_version)
        driver = driver_version(nvidia_smi_output)
        minimum = driver_minimum()
        missing = [c for c in builds if c not in minimum]
        if missing:
            raise StackError(
                f"CUDA {', '.join(missing)} of torch {torch_version} has no driver minimum in the table"
            )
        accepted = [c for c in builds if runs_on(c, driver)]
    except (StackError, InvalidVersion) as exc:
        choice["error"] = str(exc)
        return choice
    choice["driver"] = driver
    if not accepted:
        oldest = builds[0]
        choice["error"] = (
            f"NVIDIA driver {driver} is too old for torch {torch_version}: its CUDA builds "
            f"({', '.join(backend(c) for c in builds)}) need driver >= {minimum[oldest]} at least "
            f"(CUDA {oldest})"
        )
        return choice
    choice.update(cuda=accepted[-1], backend=backend(accepted[-1]), accepted=accepted)
    return choice


def resolve_extras(extra_map: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """ms_swift_extra_map with its `stack_packages`/`stack_compiled` (package names of this table) turned into
    pinned requirements at the front of `packages`/`compiled`: the role and swiftfleet.jobs.needs see the same."""
    resolved: dict[str, dict[str, Any]] = {}
    for need, entry in extra_map.items():
        out = {k: v for k, v in entry.items() if k not in ("stack_packages", "stack_compiled")}
        for key, kind in (("stack_packages", "packages"), ("stack_compiled", "compiled")):
            if key in entry:
                out[kind] = [requirement(p) for p in entry[key]] + list(entry.get(kind, []))
        resolved[need] = out
    return resolved
