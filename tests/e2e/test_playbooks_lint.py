"""ansible-lint's production profile over every playbook and their shared tasks (offline)."""

from tests.conftest import REPO
from tests.roles.conftest import BIN, run


def test_playbooks_pass_the_production_profile() -> None:
    playbooks = sorted(str(p.relative_to(REPO)) for p in (REPO / "playbooks").glob("*.yml"))
    assert "playbooks/nccl_test.yml" in playbooks and "playbooks/check.yml" in playbooks
    targets = [*playbooks, "playbooks/tasks", "playbooks/vars"]
    result = run([str(BIN / "ansible-lint"), "--offline", "--profile", "production", *targets])
    assert result.rc == 0, result.output[-6000:]
    assert "Profile 'production' was required, and it passed" in result.output
