"""`molecule test` of every role that has a scenario: create, converge, idempotence, verify, destroy.

Roles are discovered, so a new role's scenario is tested without touching this file. Each run names its
container after the role and this process (SWIFTFLEET_MOLECULE_ID, see .config/molecule/config.yml).
"""

import os

import pytest

from tests.conftest import REPO
from tests.roles.conftest import BIN, run

SCENARIOS = sorted(p.parents[2].name for p in (REPO / "roles").glob("*/molecule/default/molecule.yml"))

pytestmark = pytest.mark.docker


@pytest.mark.parametrize("role", SCENARIOS)
def test_molecule_scenario(role: str, node_image: str) -> None:
    env = {"SWIFTFLEET_MOLECULE_ID": f"{role}-{os.getpid()}", "PATH": f"{BIN}:{os.environ['PATH']}"}
    result = run([str(BIN / "molecule"), "test"], cwd=REPO / "roles" / role, env=env)
    print(f"molecule test {role}: {result.seconds:.0f} s")
    assert result.rc == 0, result.output[-6000:]
    for step in ("converge", "idempotence", "verify"):
        assert f"[default > {step}] Executed: Successful" in result.output, f"{step} did not run"
