"""Fixtures shared by every test directory."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SWIFTFLEET = [sys.executable, "-m", "swiftfleet"]


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
