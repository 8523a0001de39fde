"""Fixtures shared by every test directory."""

import importlib.util
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from swiftfleet import local_cluster
from swiftfleet.settings import LocalCluster

REPO = Path(__file__).resolve().parents[1]
SWIFTFLEET = [sys.executable, "-m", "swiftfleet"]
# The controller-side ms-swift (make venv-swift) that `swift`-marked tests use to make the tiny model and train.
SWIFT_PYTHON = Path(os.environ.get("SWIFTFLEET_SWIFT_PYTHON", REPO / ".venv-swift" / "bin" / "python"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Without that ms-swift, `swift` tests are skipped, saying why; in CI (CI=true) nothing is skipped."""
    if SWIFT_PYTHON.exists() or os.environ.get("CI") == "true":
        return
    skip = pytest.mark.skip(reason=f"no ms-swift Python at {SWIFT_PYTHON} (make venv-swift)")
    for item in items:
        if "swift" in item.keywords:
            item.add_marker(skip)


def library_module(name: str) -> ModuleType:
    """A module of playbooks/library (Ansible ships it to the hosts; the tests import it from its file)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "playbooks" / "library" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at address now (the OS picks it), for a test's own server."""
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def clear_local_cluster(name: str) -> None:
    """Remove a local cluster of this name that an interrupted session left: its containers outlive a stopped
    machine, jobs and all, and `cluster up` would adopt them as they are. Call with the test's state dirs set."""
    local_cluster.down(LocalCluster(name=name))


@pytest.fixture
def isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Inventory and state in a temporary directory, so tests never touch the user's clusters."""
    monkeypatch.setenv("SWIFTFLEET_INVENTORY_DIR", str(tmp_path / "inventory"))
    monkeypatch.setenv("SWIFTFLEET_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("SWIFTFLEET_CLUSTER", raising=False)
    yield tmp_path


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess, as a user runs it."""
    return subprocess.run(
        [*SWIFTFLEET, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )


def start_cli(*args: str) -> subprocess.Popen[str]:
    """The CLI as a user starts it, in the background and without a terminal (stdin closed: nothing can be asked)."""
    return subprocess.Popen(
        [*SWIFTFLEET, *args], cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
