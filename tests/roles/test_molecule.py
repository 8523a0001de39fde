"""`molecule test` of every role that has a scenario: create, converge, idempotence, verify, destroy.

Roles are discovered, so a new role's scenario is tested without touching this file. Each run names its
container after the role and this process (SWIFTFLEET_MOLECULE_ID, see .config/molecule/config.yml), so the
scenarios run SWIFTFLEET_MOLECULE_JOBS at a time (default 2): much of a scenario is waiting on SSH-less
`docker exec` round trips and package downloads, which overlap well even on two cores.
"""

import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from tests.conftest import REPO
from tests.roles.conftest import BIN, Run, run

SCENARIOS = sorted(p.parents[2].name for p in (REPO / "roles").glob("*/molecule/default/molecule.yml"))
JOBS = int(os.environ.get("SWIFTFLEET_MOLECULE_JOBS", "2"))

pytestmark = pytest.mark.docker


def _molecule_test(role: str) -> Run:
    env = {"SWIFTFLEET_MOLECULE_ID": f"{role}-{os.getpid()}", "PATH": f"{BIN}:{os.environ['PATH']}"}
    return run([str(BIN / "molecule"), "test"], cwd=REPO / "roles" / role, env=env)


@pytest.fixture(scope="module")
def scenario_runs(request: pytest.FixtureRequest, node_image: str) -> Iterator[dict[str, Future[Run]]]:
    """Every selected role's `molecule test`, started at once on a pool; each test waits for its own."""
    selected = {
        item.callspec.params["role"] for item in request.session.items if item.module is request.module
    }
    pool = ThreadPoolExecutor(max_workers=JOBS)
    try:
        yield {role: pool.submit(_molecule_test, role) for role in SCENARIOS if role in selected}
    finally:
        pool.shutdown(cancel_futures=True)  # an interrupted session starts no more scenarios


@pytest.mark.parametrize("role", SCENARIOS)
def test_molecule_scenario(role: str, scenario_runs: dict[str, Future[Run]]) -> None:
    result = scenario_runs[role].result()
    print(f"molecule test {role}: {result.seconds:.0f} s")
    assert result.rc == 0, result.output[-6000:]
    for step in ("converge", "idempotence", "verify"):
        assert f"[default > {step}] Executed: Successful" in result.output, f"{step} did not run"
