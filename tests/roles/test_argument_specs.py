"""A bad role variable fails before the role changes anything, with a message that names it.

The role runs against the controller itself in check mode: nothing would change even if validation let a
bad value through, and the test would then fail on the missing message.
"""

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.roles.conftest import ansible_playbook

PLAY = """\
- name: Apply one role with the variables under test
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Apply the role
      ansible.builtin.include_role:
        name: "{{ role_under_test }}"
"""

CASES = [
    ("uv", {"uv_version": "latest"}, ["uv_version must look like 0.13.9", "latest"]),
    ("ms_swift", {"ms_swift_version": "3.12.6"}, ["ms_swift_version must be 4.X.Y", "3.12.6"]),
    ("ms_swift", {"ms_swift_extras": ["eval", "turbo"]}, ["ms_swift_extras", "turbo", "flash-attn"]),
    ("ms_swift", {"ms_swift_gpu": "maybe"}, ["ms_swift_gpu", "maybe", "auto"]),
    ("ms_swift", {"ms_swift_awscli_version": "2.0"}, ["ms_swift_awscli_version 1.X.Y or empty", "2.0"]),
    (
        "ms_swift",
        {"ms_swift_cache_dir": "cache"},
        ["ms_swift_cache_dir and ms_swift_wheel_dir must be absolute"],
    ),
    ("ms_swift", {"ms_swift_extras": ["vllm"], "ms_swift_gpu": "false"}, ["vllm need a GPU node"]),
    ("ms_swift", {"ms_swift_uv": "/nonexistent/uv"}, ["no uv at /nonexistent/uv: apply the uv role first"]),
    ("ms_swift", {"ms_swift_max_jobs": 0}, ["ms_swift_max_jobs must be 1..64 (got 0)"]),
    (
        "ms_swift",
        {"ms_swift_build_requirements": ["ninja"]},
        ["every ms_swift_build_requirements entry", "ninja"],
    ),
    (
        "ms_swift",
        {"ms_swift_source_builds": ["setproctitle>=1.3"]},
        ["every ms_swift_source_builds entry must be name==version", "setproctitle>=1.3"],
    ),
    (
        "wheel_cache",
        {"wheel_cache_dir": "cache/wheels"},
        ["wheel_cache_dir", "must be absolute", "cache/wheels"],
    ),
    (
        "node_storage",
        {"node_storage_shared_fs": {"type": "nfs", "address": "fs-1.efs.us-east-1.amazonaws.com"}},
        ["node_storage_shared_fs {} or {type: efs", "nfs"],
    ),
    ("stack_check", {"stack_check_expect": "torch"}, ["stack_check_expect", "dict"]),
    (
        "stack_check",
        {"stack_check_expect": {"torch": "newest"}},
        ["every stack_check_expect version like 4.6.0"],
    ),
]


@pytest.mark.parametrize(
    ("role", "variables", "messages"), CASES, ids=[f"{c[0]}-{next(iter(c[1]))}" for c in CASES]
)
def test_bad_variable_fails_first_with_its_name(
    tmp_path: Path, role: str, variables: dict[str, object], messages: list[str]
) -> None:
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps({"role_under_test": role, **variables}))
    result = ansible_playbook("-i", "localhost,", "--check", "-e", f"@{extra}", str(playbook))
    assert result.rc != 0, result.output
    for message in messages:
        assert message in result.output, result.output[-3000:]
    assert result.recap()["localhost"]["changed"] == 0
    assert result.recap()["localhost"]["failed"] == 1


def test_setup_playbook_checks_every_role_before_the_first(tmp_path: Path) -> None:
    """A bad variable of the last role (stack_check) stops setup.yml before uv, the first role, runs."""
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps({"stack_check_expect": "torch", "swiftfleet_cluster": "argtest"}))
    inventory = tmp_path / "inventory.yml"
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory.write_text(json.dumps({"all": {"hosts": {"localhost": local}}}))  # JSON is YAML
    result = ansible_playbook(
        "-i", str(inventory), "--check", "-e", f"@{extra}", str(REPO / "playbooks" / "setup.yml")
    )
    assert result.rc != 0, result.output
    assert "stack_check_expect" in result.output, result.output[-3000:]
    assert "TASK [uv :" not in result.output
