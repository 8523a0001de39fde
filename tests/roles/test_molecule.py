"""`molecule test` of every role that has a scenario: create, converge, idempotence, verify, destroy.

Roles are discovered, so a new role's scenario is tested without touching this file. The runs start as soon as
the session's collection ends (molecule_pool.py, tests/roles/conftest.py) and overlap the tests before these;
each test waits for its own role's run and judges it.
"""

import pytest

from tests.roles import molecule_pool

pytestmark = pytest.mark.docker


@pytest.mark.parametrize("role", molecule_pool.SCENARIOS)
def test_molecule_scenario(role: str, node_image: str) -> None:
    result = molecule_pool.result(role)
    print(f"molecule test {role}: {result.seconds:.0f} s")
    assert result.rc == 0, result.output[-6000:]
    for step in ("converge", "idempotence", "verify"):
        assert f"[default > {step}] Executed: Successful" in result.output, f"{step} did not run"
