"""`molecule test` of the selected roles, started when collection ends and run SWIFTFLEET_MOLECULE_JOBS at a time
(default 2) beside the rest of the session: a scenario mostly waits on `docker exec` round trips and package
installs, and so do the Terraform-on-moto tests that run first (the provider polls EC2 every few seconds), so the
two overlap on two cores instead of queueing. Each scenario names its container after the role and this process
(SWIFTFLEET_MOLECULE_ID, .config/molecule/config.yml), so parallel runs never share one."""

import os
from concurrent.futures import Future, ThreadPoolExecutor

from tests.conftest import REPO
from tests.roles.conftest import BIN, Run, run

SCENARIOS = sorted(p.parents[2].name for p in (REPO / "roles").glob("*/molecule/default/molecule.yml"))
JOBS = int(os.environ.get("SWIFTFLEET_MOLECULE_JOBS", "2"))

_pool = ThreadPoolExecutor(max_workers=JOBS, thread_name_prefix="molecule")
_runs: dict[str, Future[Run]] = {}


def _molecule_test(role: str) -> Run:
    env = {"SWIFTFLEET_MOLECULE_ID": f"{role}-{os.getpid()}", "PATH": f"{BIN}:{os.environ['PATH']}"}
    return run([str(BIN / "molecule"), "test"], cwd=REPO / "roles" / role, env=env)


def start(roles: list[str]) -> None:
    """Queue each role's scenario once (the node image must exist: ensure_image before)."""
    for role in roles:
        if role not in _runs:
            _runs[role] = _pool.submit(_molecule_test, role)


def result(role: str) -> Run:
    start([role])  # a session whose collection hook did not start it (none today) still gets its run
    return _runs[role].result()


def stop() -> None:
    """An interrupted or finished session starts no more scenarios and waits for those running."""
    _pool.shutdown(cancel_futures=True)
