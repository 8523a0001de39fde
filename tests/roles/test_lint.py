"""ansible-lint's production profile over the roles, their Molecule scenarios and setup.yml (offline)."""

from tests.conftest import REPO
from tests.roles.conftest import BIN, run


def test_roles_and_setup_playbook_pass_the_production_profile() -> None:
    targets = sorted(str(p.relative_to(REPO)) for p in (REPO / "roles").iterdir() if p.is_dir())
    result = run(
        [str(BIN / "ansible-lint"), "--offline", "--profile", "production", *targets, "playbooks/setup.yml"]
    )
    assert result.rc == 0, result.output[-6000:]
    assert "Profile 'production' was required, and it passed" in result.output
