"""playbooks/library/swiftfleet_node_use.py (status.yml's node column): a stand-in nvidia-smi on PATH answers as
the real one does with `--format=csv,noheader,nounits` (MiB), or fails as it does without a driver."""

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import library_module

NODE_USE = library_module("swiftfleet_node_use")


class _Runner:
    """What gpu_use() asks of AnsibleModule, done for real: find the binary on PATH, run it."""

    def get_bin_path(self, name: str) -> str | None:
        for d in os.environ["PATH"].split(os.pathsep):
            if os.access(os.path.join(d, name), os.X_OK):
                return os.path.join(d, name)
        return None

    def run_command(self, argv: list[str]) -> tuple[int, str, str]:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        return done.returncode, done.stdout, done.stderr


def _smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    smi = tmp_path / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\n{script}\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")


def test_each_gpu_its_use_and_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _smi(tmp_path, monkeypatch, 'test "$1" = "--query-gpu=index,utilization.gpu,memory.used,memory.total" || exit 9\n'
         'printf "0, 87, 30822, 81559\\n1, 0, 4, 81559\\n"')  # fmt: skip
    gpus, line = NODE_USE.gpu_use(_Runner())
    assert line == "GPU0 87% 30.1/79.6 GiB, GPU1 0% 0.0/79.6 GiB"
    assert [g["util"] for g in gpus] == [87, 0]


def test_a_node_without_gpus_or_driver_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert NODE_USE.gpu_use(_Runner()) == ([], "no GPU (no nvidia-smi)")
    _smi(tmp_path, monkeypatch, "echo \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA "
         "driver.\"; exit 9")  # fmt: skip
    assert NODE_USE.gpu_use(_Runner()) == (
        [], "GPUs: nvidia-smi failed (NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.)"
    )  # fmt: skip


def test_memory_is_read_from_meminfo() -> None:
    used, total = NODE_USE.memory_gib()
    assert 0 < used < total
