"""Helpers for the role tests: running Ansible and Molecule from the repository as a user would."""

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

BIN = Path(sys.executable).parent
RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)


@dataclass
class Run:
    rc: int
    output: str
    seconds: float

    def recap(self) -> dict[str, dict[str, int]]:
        """The last PLAY RECAP: host -> {ok, changed, unreachable, failed}."""
        last = self.output.rsplit("PLAY RECAP", 1)[-1]
        return {
            m["host"]: {k: int(v) for k, v in m.groupdict().items() if k != "host"}
            for m in RECAP.finditer(last)
        }


def run(cmd: list[str], cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 3600) -> Run:
    """A command with output captured as one stream (Ansible interleaves stdout and stderr)."""
    started = time.monotonic()
    done = subprocess.run(
        cmd,
        cwd=cwd,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "NO_COLOR": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(done.returncode, done.stdout, time.monotonic() - started)


def ansible_playbook(*args: str, env: dict[str, str] | None = None) -> Run:
    return run([str(BIN / "ansible-playbook"), *args], env=env)


@pytest.fixture(scope="session")
def node_image() -> str:
    """The Debian systemd node image of Molecule and local clusters (built offline once)."""
    from swiftfleet.image import DEFAULT_TAG, ensure_image

    ensure_image(DEFAULT_TAG)
    return DEFAULT_TAG


def pytest_collection_finish(session: pytest.Session) -> None:
    """The selected Molecule scenarios start now, beside the tests that come before them (molecule_pool.py)."""
    roles = [
        str(item.callspec.params["role"])
        for item in session.items
        if isinstance(item, pytest.Function) and item.originalname == "test_molecule_scenario"
    ]
    if roles and not session.config.option.collectonly:
        from swiftfleet.image import DEFAULT_TAG, ensure_image
        from tests.roles import molecule_pool

        ensure_image(DEFAULT_TAG)
        molecule_pool.start(roles)


def pytest_sessionfinish() -> None:
    from tests.roles import molecule_pool

    molecule_pool.stop()
