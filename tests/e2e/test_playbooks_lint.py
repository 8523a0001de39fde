"""ansible-lint's production profile over the job playbooks and their shared tasks (offline)."""

from tests.roles.conftest import BIN, run

PLAYBOOKS = ["train", "status", "logs", "stop", "export", "deploy", "eval", "ttl"]


def test_job_playbooks_pass_the_production_profile() -> None:
    targets = [f"playbooks/{name}.yml" for name in PLAYBOOKS] + ["playbooks/tasks", "playbooks/vars"]
    result = run([str(BIN / "ansible-lint"), "--offline", "--profile", "production", *targets])
    assert result.rc == 0, result.output[-6000:]
    assert "Profile 'production' was required, and it passed" in result.output
